"""Optimisation settings shared by teacher fine-tuning and distillation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT, MAX_EPOCHS, MAX_FACTOR


class TrainingConfig(StageConfig):
    """One training run: epochs or steps, batch, optimiser, and how the best checkpoint is chosen."""

    epochs: float = Field(
        3.0, gt=0, le=MAX_EPOCHS, description="Passes over the training split (fractions allowed)."
    )
    max_steps: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Stop after this many optimiser steps (overrides epochs)."
    )
    batch_size: int = Field(32, ge=1, le=MAX_COUNT, description="Examples per optimiser step and process.")
    eval_batch_size: int = Field(128, ge=1, le=MAX_COUNT)
    learning_rate: float = Field(1e-4, gt=0, le=MAX_FACTOR)
    weight_decay: float = Field(0.01, ge=0, le=MAX_FACTOR)
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="Fraction of steps with linear learning-rate warm-up."
    )
    max_grad_norm: float | None = Field(1.0, gt=0, le=MAX_FACTOR)
    evals_per_epoch: int = Field(
        2, ge=1, le=MAX_COUNT, description="Validation passes per epoch; the best one is kept."
    )
    select_metric: Literal["accuracy", "f1_macro"] = Field(
        "accuracy", description="Validation metric that picks the checkpoint to keep."
    )
