"""What every stage may use besides its own config and inputs: one small typed context.

Stages take ``run(config, inputs, context, out_dir)``: ``config`` is the stage's slice of the recipe,
``inputs`` the upstream artifacts (a small dataclass per stage), ``context`` this object, ``out_dir`` the
folder the stage writes (renamed into place when it finishes; see runfolder.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from edgecompress.data.examples import PreparedData


def log_to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StageContext:
    """Shared by the stages of one run.

    ``accelerator`` is the Hugging Face Accelerate context training stages use (device, precision,
    processes); ``data`` the prepared splits (None while the data stage itself runs); ``seed`` the seed the
    stage's data order derives from; ``recipe`` the whole recipe as plain JSON, recorded in every artifact.
    """

    accelerator: Any
    data: PreparedData | None
    seed: int
    max_length: int
    log: Callable[[str], None] = log_to_stderr
    recipe: dict = field(default_factory=dict)

    @property
    def is_main_process(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def with_seed(self, seed: int) -> StageContext:
        return replace(self, seed=seed)
