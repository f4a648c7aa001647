"""The student and the distillation with attention transfer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgecompress.config_base import StageConfig
from edgecompress.training.config import TrainingConfig


class StudentConfig(StageConfig):
    """The small model: the teacher's architecture with fewer layers (default), other widths, or any model."""

    model: str | None = Field(
        None, description="Use this model (local folder or hub id) instead of building one."
    )
    num_layers: int = Field(3, ge=1, description="Transformer layers of the built student.")
    init_layers: list[int] | None = Field(
        None, description="Teacher layers (0-based) copied into the student; default spread evenly."
    )
    hidden_size: int | None = Field(
        None, ge=8, description="Other width: the student is randomly initialised."
    )
    num_attention_heads: int | None = Field(None, ge=1)
    intermediate_size: int | None = Field(None, ge=8)

    @model_validator(mode="after")
    def _init_layers_and_heads_fit(self) -> StudentConfig:
        if self.init_layers is not None:
            if len(self.init_layers) != self.num_layers:
                raise ValueError(
                    f"init_layers has {len(self.init_layers)} entries but num_layers is {self.num_layers}"
                )
            if any(i < 0 for i in self.init_layers):
                raise ValueError("init_layers are 0-based teacher layer indices (>= 0)")
        if self.hidden_size and self.num_attention_heads and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        return self

    @property
    def changes_width(self) -> bool:
        return any(
            v is not None for v in (self.hidden_size, self.num_attention_heads, self.intermediate_size)
        )


class LossWeights(StageConfig):
    """Weights of the four loss terms; a zero weight switches the term (and its teacher outputs) off."""

    ce: float = Field(1.0, ge=0, description="Cross-entropy on the hard labels.")
    kd: float = Field(1.0, ge=0, description="T^2 * KL(teacher || student) on temperature-softened logits.")
    attention: float = Field(1.0, ge=0, description="Attention-map transfer over the layer mapping.")
    hidden: float = Field(1.0, ge=0, description="Hidden-state MSE over the layer mapping.")

    @model_validator(mode="after")
    def _at_least_one_term(self) -> LossWeights:
        if not any((self.ce, self.kd, self.attention, self.hidden)):
            raise ValueError("all loss weights are 0: nothing to train on")
        return self

    @property
    def uses_teacher(self) -> bool:
        return bool(self.kd or self.attention or self.hidden)


class DistillConfig(StageConfig):
    """Loss = ce*CE + kd*T^2*KL + attention*AT + hidden*MSE(proj(h_s), h_t)."""

    training: TrainingConfig = Field(default_factory=TrainingConfig)
    temperature: float = Field(2.0, gt=0, description="Softmax temperature T of the soft targets.")
    weights: LossWeights = Field(default_factory=LossWeights)
    attention_loss: Literal["kl", "mse"] = Field(
        "kl",
        description="kl: KL(teacher row || student row) per query row; mse: squared error summed over keys, "
        "averaged over query rows.",
    )
    layer_mapping: list[int] | None = Field(
        None, description="Teacher layer (0-based) matched by each student layer; default spread evenly."
    )
    head_mismatch: Literal["average", "refuse"] = Field(
        "average",
        description="When a student layer has a different head count than its teacher layer: compare "
        "head-averaged attention maps, or refuse the recipe.",
    )


class StudentStageConfig(StageConfig):
    """What the student stage is built from: the student's shape and how it is distilled."""

    student: StudentConfig
    distill: DistillConfig
