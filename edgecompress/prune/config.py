"""Pruning: which heads, feed-forward units and word-pieces to remove, and how to recover."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT, MAX_FACTOR, MAX_REPEATS, MAX_WIDTH
from edgecompress.distill.config import DistillConfig
from edgecompress.training.config import TrainingConfig


class HeadPruningConfig(StageConfig):
    """Attention heads. threshold: remove heads whose per-layer normalised importance is below ``threshold``;
    structured: remove the ``fraction`` (or ``count``) least important heads, ranked globally or per layer."""

    mode: Literal["none", "threshold", "structured"] = Field("none", description="How heads are chosen.")
    threshold: float | None = Field(
        None,
        gt=0,
        le=MAX_FACTOR,
        description="threshold mode: importance / L2 norm of the layer's importances (as Michel et al.).",
    )
    fraction: float | None = Field(
        None, gt=0, lt=1, description="structured: share of heads to remove (rounded up)."
    )
    count: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="structured: number of heads to remove (instead of fraction)."
    )
    scope: Literal["global", "per_layer", "uniform"] = Field(
        "global",
        description="Rank heads across all layers, remove the same share from every layer, or (uniform) remove "
        "the same heads from every layer, ranked by their importance summed over the layers (the only choice "
        "for MPNet, whose relative position bias is shared by all layers).",
    )
    allow_layer_drop: bool = Field(
        False, description="Allow a layer to lose all its heads; the whole layer is then removed."
    )

    @model_validator(mode="after")
    def _mode_has_its_target(self) -> HeadPruningConfig:
        if self.mode == "threshold" and self.threshold is None:
            raise ValueError("mode 'threshold' needs 'threshold'")
        if self.mode == "structured" and (self.fraction is None) == (self.count is None):
            raise ValueError("mode 'structured' needs exactly one of 'fraction' or 'count'")
        if self.mode != "threshold" and self.threshold is not None:
            raise ValueError("'threshold' is only used with mode 'threshold'")
        if self.mode != "structured" and (self.fraction is not None or self.count is not None):
            raise ValueError("'fraction'/'count' are only used with mode 'structured'")
        return self


class FfnPruningConfig(StageConfig):
    """Feed-forward (intermediate) units, two thirds of a layer's weights: remove the least important."""

    fraction: float | None = Field(
        None, gt=0, lt=1, description="Share of intermediate units to remove (rounded up)."
    )
    count: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Number of units to remove (per layer when scope is per_layer)."
    )
    scope: Literal["global", "per_layer"] = Field(
        "per_layer",
        description="per_layer keeps equal widths (a plain transformers checkpoint); global ranks across layers "
        "(unequal widths, reloaded with edgecompress.modeling.loading.load_saved_classifier).",
    )
    multiple_of: int = Field(
        1,
        ge=1,
        le=MAX_WIDTH,
        description="Every layer keeps a multiple of this many units (more go, the least important first): "
        "e.g. 32 so the FFN output projection splits into whole 4-bit groups (weight_only group_size).",
    )

    @model_validator(mode="after")
    def _fraction_or_count(self) -> FfnPruningConfig:
        if self.fraction is not None and self.count is not None:
            raise ValueError("give 'fraction' or 'count', not both")
        return self

    @property
    def enabled(self) -> bool:
        return self.fraction is not None or self.count is not None


class VocabTrimConfig(StageConfig):
    """Keep the word-pieces seen in the training split (plus special tokens and all single characters)."""

    enabled: bool = Field(False, description="Trim the vocabulary and the embedding rows with it.")
    min_frequency: int = Field(
        1, ge=1, le=MAX_COUNT, description="Keep word-pieces seen at least this often in the training split."
    )


class EmbeddingShrinkConfig(StageConfig):
    """The embedding tables, after vocabulary trimming and before recovery (which then trains them)."""

    rank: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="Factorise the word table into vocab x rank and rank x hidden, initialised by its truncated "
        "SVD (ALBERT-style); null keeps it whole. The checkpoint then needs "
        "edgecompress.modeling.loading.load_saved_classifier; its ONNX export loads like any other.",
    )
    trim_positions: bool = Field(
        False,
        description="Keep only data.max_length rows of the position table (inputs are truncated to that many "
        "tokens; the artifact's tokenizer says so in model_max_length).",
    )

    @property
    def enabled(self) -> bool:
        return self.rank is not None or self.trim_positions


class PruneConfig(StageConfig):
    """Prune the distilled student, then recover with a short distillation (same losses as ``distill``)."""

    importance: Literal["gradient", "entropy", "magnitude"] = Field(
        "gradient",
        description="Head scores: gradient (E|dL/d gate| of a gate on each head's output, Michel et al. 2019), "
        "attention entropy, or weight magnitude. FFN units use gradient gates, or magnitude otherwise.",
    )
    importance_batches: int = Field(
        32, ge=1, le=MAX_COUNT, description="Training batches used to estimate importance."
    )
    importance_batch_size: int = Field(32, ge=1, le=MAX_COUNT, description="Examples per importance batch.")
    heads: HeadPruningConfig = Field(default_factory=HeadPruningConfig)
    ffn: FfnPruningConfig = Field(default_factory=FfnPruningConfig)
    vocab: VocabTrimConfig = Field(default_factory=VocabTrimConfig)
    embeddings: EmbeddingShrinkConfig = Field(default_factory=EmbeddingShrinkConfig)
    steps: int = Field(
        1, ge=1, le=MAX_REPEATS, description="Prune in this many equal steps, recovering after each."
    )
    recovery: TrainingConfig | None = Field(
        default_factory=lambda: TrainingConfig(epochs=1),
        description="Distillation after each pruning step (null: no recovery).",
    )

    @model_validator(mode="after")
    def _prunes_something(self) -> PruneConfig:
        if (
            self.heads.mode == "none"
            and not self.ffn.enabled
            and not self.vocab.enabled
            and not self.embeddings.enabled
        ):
            raise ValueError(
                "nothing to prune: set heads.mode, ffn.fraction/count, vocab.enabled or embeddings.rank/trim_positions"
            )
        if self.steps > 1 and self.heads.mode == "threshold":
            raise ValueError("iterative pruning (steps > 1) needs structured targets, not a threshold")
        return self


class PruneStageConfig(StageConfig):
    """What the prune stage is built from: the pruning, and the distillation its recovery repeats."""

    prune: PruneConfig
    distill: DistillConfig
