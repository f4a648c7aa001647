"""One place that creates the Accelerate context: device choice, precision, seeding."""

from __future__ import annotations

import torch

from edgecompress.errors import RecipeError


def make_accelerator(device: str = "auto", mixed_precision: str = "no", seed: int = 0):
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if device == "cuda" and not torch.cuda.is_available():
        raise RecipeError("'cuda' asked but no GPU is visible to torch", where="device")
    cpu = device == "cpu" or not torch.cuda.is_available()
    if cpu and mixed_precision == "fp16":
        mixed_precision = "no"  # fp16 autocast is GPU-only; bf16 works on CPU too but is slower here
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision if not cpu else "no")
    set_seed(seed)
    return accelerator
