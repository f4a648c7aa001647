"""What every stage may use besides its own config and inputs: one small typed context.

Stages take ``run(config, inputs, context, out_dir)``: ``config`` is the stage's slice of the recipe,
``inputs`` the upstream artifacts (a small dataclass per stage), ``context`` this object, ``out_dir`` the
folder the stage writes (renamed into place when it finishes; see runfolder.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgecompress.data.examples import PreparedData


def log_to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StageContext:
    """Shared by the stages of one run.

    ``accelerator`` is the Hugging Face Accelerate context training stages use (device, precision,
    processes); ``data`` the prepared splits (None while the data stage itself runs); ``seed`` the seed the
    stage's data order derives from; ``recipe`` the whole recipe as plain JSON, recorded in every artifact;
    ``run_dir`` the run folder, which records name paths relative to (so the folder can move).
    """

    accelerator: Any
    data: PreparedData | None
    seed: int
    max_length: int
    log: Callable[[str], None] = log_to_stderr
    recipe: dict = field(default_factory=dict)
    run_dir: Path | None = None
    # called as on_recovery(step, validation) after each pruning round's recovery (a search's pruner stops a
    # trial from it by raising); never part of a stage's key: it cannot change what the stage writes
    on_recovery: Callable[[int, dict], None] | None = None

    @property
    def is_main_process(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def with_seed(self, seed: int) -> StageContext:
        return replace(self, seed=seed)

    def relative(self, path: Path) -> str:
        """``path`` as recorded: relative to the run folder when inside it, else absolute."""
        return relative_to_run(path, self.run_dir)


def relative_to_run(path: Path, run_dir: Path | None) -> str:
    path = Path(path).absolute()
    if run_dir is not None:
        rel = os.path.relpath(path, Path(run_dir).absolute())
        if not rel.startswith(".."):
            return rel
    return str(path)


def resolve_in_run(recorded: str, run_dir: Path | None) -> Path:
    """A path recorded by ``relative_to_run``, back as a path usable from the current directory."""
    path = Path(recorded)
    return path if path.is_absolute() or run_dir is None else Path(run_dir) / path
