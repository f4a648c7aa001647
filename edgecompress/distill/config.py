"""The student and the distillation with attention transfer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import (
    MAX_FACTOR,
    MAX_LAYERS,
    MAX_MEMORY_MB,
    MAX_REPEATS,
    MAX_TOKENS,
    MAX_WIDTH,
)
from edgecompress.training.config import TrainingConfig


class LstmConfig(StageConfig):
    """The BiLSTM student's encoder."""

    hidden_size: int = Field(256, ge=8, le=MAX_WIDTH, description="Units per direction.")
    num_layers: int = Field(1, ge=1, le=4, description="Stacked BiLSTM layers.")
    pooling: Literal["max", "mean"] = Field(
        "max", description="Sentence vector: max or mean over real tokens."
    )


class CnnConfig(StageConfig):
    """The TextCNN student's encoder: one convolution per kernel width, max-over-time pooling."""

    kernel_sizes: list[Annotated[int, Field(ge=1, le=MAX_TOKENS)]] = Field(
        [2, 3, 4], min_length=1, description="Widths (tokens) of the convolutions."
    )
    filters: int = Field(128, ge=1, le=MAX_WIDTH, description="Filters per kernel width.")


TRANSFORMER_FIELDS = (
    "model",
    "num_layers",
    "init_layers",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
)


class StudentConfig(StageConfig):
    """The small model: the teacher's architecture with fewer layers (default), other widths, or any model;
    or a BiLSTM / TextCNN over the teacher's word-pieces."""

    architecture: Literal["transformer", "bilstm", "textcnn"] = Field(
        "transformer",
        description="transformer: the teacher's architecture, smaller. bilstm / textcnn: a classic network over "
        "the teacher's word-pieces (embeddings from the teacher's table), distilled on the teacher's logits "
        "(and sentence vector); no attention transfer.",
    )

    model: str | None = Field(
        None, description="Use this model (local folder or hub id) instead of building one."
    )
    num_layers: int = Field(3, ge=1, le=MAX_LAYERS, description="Transformer layers of the built student.")
    init_layers: list[Annotated[int, Field(ge=0, lt=MAX_LAYERS)]] | None = Field(
        None, description="Teacher layers (0-based) copied into the student; default spread evenly."
    )
    hidden_size: int | None = Field(
        None, ge=8, le=MAX_WIDTH, description="Other width: the student is randomly initialised."
    )
    num_attention_heads: int | None = Field(None, ge=1, le=MAX_WIDTH)
    intermediate_size: int | None = Field(None, ge=8, le=MAX_WIDTH)
    width_init: Literal["random", "teacher"] = Field(
        "random",
        description="A student of another width: random initialisation, or from the teacher through the "
        "leading principal directions of its hidden states (needs the teacher's head size, at most its "
        "widths; heads and FFN units with the largest weights are kept).",
    )

    embedding_dim: int | None = Field(
        None,
        ge=8,
        le=MAX_WIDTH,
        description="bilstm / textcnn: width of the word-piece embeddings, from the teacher's table through its "
        "leading principal directions when narrower; default the teacher's hidden size.",
    )
    lstm: LstmConfig = Field(default_factory=LstmConfig, description="bilstm: the encoder.")
    cnn: CnnConfig = Field(default_factory=CnnConfig, description="textcnn: the encoder.")
    dropout: float = Field(
        0.1, ge=0, lt=1, description="bilstm / textcnn: dropout on embeddings and features."
    )

    @property
    def is_classic(self) -> bool:
        return self.architecture != "transformer"

    def _changed(self, fields) -> list[str]:
        """Fields set to something other than their default (a dumped recipe repeats every default)."""
        spec = type(self).model_fields
        return [f for f in fields if getattr(self, f) != spec[f].get_default(call_default_factory=True)]

    @model_validator(mode="after")
    def _fields_of_its_architecture(self) -> StudentConfig:
        if self.is_classic:
            wrong = self._changed(TRANSFORMER_FIELDS + ("width_init",))
            if wrong:
                raise ValueError(
                    f"{', '.join(wrong)}: transformer fields, not used by a {self.architecture} student"
                )
        else:
            wrong = self._changed(("embedding_dim", "lstm", "cnn", "dropout"))
            if wrong:
                raise ValueError(
                    f"{', '.join(wrong)}: bilstm / textcnn fields, not used by a transformer student"
                )
        return self

    @model_validator(mode="after")
    def _init_layers_and_heads_fit(self) -> StudentConfig:
        if self.init_layers is not None:
            if len(self.init_layers) != self.num_layers:
                raise ValueError(
                    f"init_layers has {len(self.init_layers)} entries but num_layers is {self.num_layers}"
                )
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

    ce: float = Field(1.0, ge=0, le=MAX_FACTOR, description="Cross-entropy on the hard labels.")
    kd: float = Field(
        1.0,
        ge=0,
        le=MAX_FACTOR,
        description="Soft targets: T^2 * KL(teacher || student) at temperature T, or MSE on logits.",
    )
    attention: float = Field(
        1.0,
        ge=0,
        le=MAX_FACTOR,
        description="Attention-map transfer over the layer mapping (transformer students).",
    )
    hidden: float = Field(
        1.0,
        ge=0,
        le=MAX_FACTOR,
        description="Hidden states over the layer mapping (transformer students), or the sentence vector against "
        "the teacher's last [CLS] state (bilstm / textcnn), through a learned projection when widths differ.",
    )

    @model_validator(mode="after")
    def _at_least_one_term(self) -> LossWeights:
        if not any((self.ce, self.kd, self.attention, self.hidden)):
            raise ValueError("all loss weights are 0: nothing to train on")
        return self

    @property
    def uses_teacher(self) -> bool:
        return bool(self.kd or self.attention or self.hidden)


class AugmentationConfig(StageConfig):
    """The transfer set enlarged with perturbed copies of the training texts (Tang et al. 2019), labelled by
    the teacher only (no hard labels). Part-of-speech-guided replacement is left out: no tagger ships offline."""

    copies: int = Field(10, ge=1, le=MAX_REPEATS, description="Augmented copies of each training example.")
    mask_prob: float = Field(0.1, ge=0, le=1, description="Each word becomes [MASK] with this probability.")
    ngram_prob: float = Field(
        0.25, ge=0, le=1, description="With this probability a copy keeps only a random n-gram of the text."
    )
    ngram_max: int = Field(
        5, ge=1, le=MAX_TOKENS, description="Longest n-gram kept (n is drawn from 1..ngram_max)."
    )


class DistillConfig(StageConfig):
    """Loss = ce*CE + kd*(T^2*KL or MSE on logits) + attention*AT + hidden*(MSE or 1-cosine)(proj(h_s), h_t)."""

    training: TrainingConfig = Field(default_factory=TrainingConfig)
    temperature: float = Field(
        2.0, gt=0, le=MAX_FACTOR, description="Softmax temperature T of the soft targets."
    )
    weights: LossWeights = Field(default_factory=LossWeights)
    kd_loss: Literal["kl", "mse"] = Field(
        "kl", description="kl: T^2 * KL at temperature T (Hinton et al.); mse: squared error between logits."
    )
    hidden_loss: Literal["mse", "cosine"] = Field(
        "mse",
        description="Hidden-state / sentence-vector term: mean squared error, or 1 - cosine similarity.",
    )
    augmentation: AugmentationConfig | None = Field(
        None, description="Enlarge the transfer set with masked and n-gram-sampled copies; null: none."
    )
    teacher_memory_mb: int = Field(
        4096,
        ge=0,
        le=MAX_MEMORY_MB,
        description="Keep the frozen teacher's outputs (the logits and the layers the losses use) per example "
        "after its first pass, so later epochs and recovery rounds skip its forward; 0: read them every step.",
    )
    attention_loss: Literal["kl", "mse"] = Field(
        "kl",
        description="kl: KL(teacher row || student row) per query row; mse: squared error summed over keys, "
        "averaged over query rows.",
    )
    layer_mapping: list[Annotated[int, Field(ge=0, lt=MAX_LAYERS)]] | None = Field(
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
