"""Which teacher to start from and whether the pipeline fine-tunes it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgecompress.config_base import StageConfig
from edgecompress.training.config import TrainingConfig


class TeacherConfig(StageConfig):
    """The big model. ``model`` is a local folder, a hub id, or ``embedded:all-MiniLM-L6-v2``."""

    model: str = Field("embedded:all-MiniLM-L6-v2", description="Local folder, hub id, or embedded:NAME.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(False, description="Allow the checkpoint's own Python code to run.")
    finetune: Literal["auto", "always", "never"] = Field(
        "auto",
        description="auto: fine-tune unless the checkpoint already has a classification head for these labels.",
    )
    training: TrainingConfig = Field(
        default_factory=lambda: TrainingConfig(epochs=2, learning_rate=1e-4),
        description="Fine-tuning settings.",
    )
