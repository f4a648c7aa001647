"""One place that creates the Accelerate context: device choice, training precision, seeding."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from edgecompress.errors import RecipeError

# CPU flags with bf16 arithmetic that PyTorch's CPU autocast uses (oneDNN); measured here on avx512_bf16:
# a MiniLM training step at batch 32 took 0.6x the fp32 time. ARM's bf16 flag is left out: not measured.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    """The training precision used (``no`` = fp32, ``bf16``, ``fp16``) and, when it is not what the recipe
    asked, why."""

    used: str
    note: str | None = None


def resolve_precision(
    asked: str, on_cuda: bool, cuda_bf16: bool = False, cpu_flags: set[str] | frozenset = frozenset()
) -> Precision:
    """What ``mixed_precision: asked`` means on this device. ``auto``: bf16 where the device computes in it (a
    CUDA device with bf16, a CPU with one of CPU_BF16_FLAGS), else fp32. An explicit request the device cannot
    honour falls back to fp32 with a note (a warning for the user), never silently."""
    if on_cuda:
        if asked == "auto":
            return Precision("bf16" if cuda_bf16 else "no")
        if asked == "bf16" and not cuda_bf16:
            return Precision("no", "bf16 asked, but this GPU has no bf16 arithmetic: training in fp32")
        return Precision(asked)
    has_bf16 = any(flag in cpu_flags for flag in CPU_BF16_FLAGS)
    if asked == "auto":
        return Precision("bf16" if has_bf16 else "no")
    if asked == "bf16" and not has_bf16:
        return Precision(
            "no", f"bf16 asked, but this CPU has none of {', '.join(CPU_BF16_FLAGS)}: training in fp32"
        )
    if asked == "fp16":
        return Precision(
            "no", "fp16 autocast needs a CUDA GPU: training on this CPU in fp32 (use bf16 or auto)"
        )
    return Precision(asked)


def make_accelerator(
    device: str = "auto",
    mixed_precision: str = "no",
    seed: int = 0,
    warn: Callable[[str], None] | None = None,
):
    """The Accelerator for ``device`` at the resolved precision (``accelerator.mixed_precision`` says which).

    ``warn`` receives the one-line note when a requested precision cannot be used here.
    """
    from accelerate import Accelerator

    from edgecompress.machine import cpu_flags

    if device == "cuda" and not torch.cuda.is_available():
        raise RecipeError("'cuda' asked but no GPU is visible to torch", where="device")
    cpu = device == "cpu" or not torch.cuda.is_available()
    precision = resolve_precision(
        mixed_precision,
        on_cuda=not cpu,
        cuda_bf16=not cpu and torch.cuda.is_bf16_supported(),
        cpu_flags=cpu_flags() if cpu else frozenset(),
    )
    _forget_other_precision(precision.used)
    accelerator = Accelerator(cpu=cpu, mixed_precision=precision.used)
    if precision.note and warn is not None and accelerator.is_main_process:
        warn(f"warning: mixed_precision: {precision.note}")
    seed_everything(seed)
    return accelerator


def _forget_other_precision(wanted: str) -> None:
    """Accelerate keeps one precision per process and refuses another; one process may run several recipes
    (the library API, the tests), so its mixed-precision state starts afresh (the process group stays)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", wanted) != wanted:
        AcceleratorState._reset_state(reset_partial_state=False)


def stage_seed(seed: int, stage: str) -> int:
    """The seed a stage starts from: a function of the recipe's seed and the stage's name only, so a stage's
    result never depends on which stages ran before it in the same process (resumed runs equal fresh ones)."""
    digest = hashlib.sha256(f"{seed}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (every device) random generators, the same on every process."""
    from accelerate.utils import set_seed

    set_seed(seed)
