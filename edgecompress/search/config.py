"""The recipe's ``search:`` section: the space ``edgecompress search`` samples, its budget and its engine."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT, MAX_FACTOR, MAX_LAYERS, MAX_WIDTH

Depth = Annotated[int, Field(ge=1, le=MAX_LAYERS)]
Threshold = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Rank = Annotated[int, Field(ge=0, le=MAX_WIDTH)]


class FractionRange(StageConfig):
    """Shares to try, from ``low`` to ``high`` by ``step``; 0 means that part is not pruned (so by default the
    search may answer "quantize only" when a tight budget leaves nothing for pruning)."""

    low: float = Field(0.0, ge=0, lt=1, description="Smallest share removed (0: that part is not pruned).")
    high: float = Field(0.8, ge=0, lt=1, description="Largest share removed.")
    step: float = Field(0.1, gt=0, le=1, description="Distance between the shares tried.")

    @model_validator(mode="after")
    def _ordered(self) -> FractionRange:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def values(self) -> list[float]:
        n = int(round((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 6) for i in range(n + 1)]


class SearchSpace(StageConfig):
    """What a trial may change in the recipe; every other field stays as the recipe sets it. Each student
    depth is distilled once (the first trial that needs it) and shared by every later trial."""

    layers: list[Depth] | None = Field(
        None,
        min_length=1,
        description="Student depths to try (each costs one distillation); null: the recipe's student.num_layers.",
    )
    head_fraction: FractionRange = Field(
        default_factory=FractionRange, description="Share of attention heads removed (prune.heads.fraction)."
    )
    ffn_fraction: FractionRange = Field(
        default_factory=FractionRange, description="Share of feed-forward units removed (prune.ffn.fraction)."
    )
    tie_fractions: bool = Field(
        False, description="One share for heads and FFN units (a smaller space: fewer trials find its best)."
    )
    head_scope: list[Literal["global", "per_layer", "uniform"]] | None = Field(
        None,
        min_length=1,
        description="Rank heads across layers, remove the same share per layer, or the same heads from every "
        "layer (uniform: the only choice for MPNet); null: the recipe's prune.heads.scope (global without one).",
    )
    min_frequency: list[Threshold] | None = Field(
        None,
        min_length=1,
        description="Word-piece thresholds to try (prune.vocab.min_frequency; 0 keeps the whole vocabulary); "
        "null: the recipe's prune.vocab.",
    )
    embedding_rank: list[Rank] | None = Field(
        None,
        min_length=1,
        description="Word-table ranks to try (prune.embeddings.rank; 0 keeps it whole); null: the recipe's.",
    )
    quantization: list[str] | None = Field(
        None,
        min_length=1,
        description="Names of the recipe's quantization variants a trial may use; null: every int8 variant that "
        "applies to the pruned model.",
    )
    embeddings: list[Literal["per_tensor", "int8", "int4"]] | None = Field(
        None,
        min_length=1,
        description="Storage of the word table in the int8 variants (per_tensor, int8 or int4 blocks); null: "
        "each variant's own.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> SearchSpace:
        for field, top in (
            ("layers", MAX_LAYERS),
            ("min_frequency", MAX_COUNT),
            ("embedding_rank", MAX_WIDTH),
        ):
            values = getattr(self, field) or []
            bad = [v for v in values if not (field != "layers" and v == 0) and not 1 <= v <= top]
            if bad:
                low = 1 if field == "layers" else 0
                raise ValueError(f"{field}: {bad[0]} is outside {low}..{top}")
            if len(set(values)) != len(values):
                raise ValueError(f"{field}: a value is listed twice")
        return self


class SearchConfig(StageConfig):
    """``edgecompress search``: the fastest (or smallest) artifact whose validation accuracy is within
    ``max_drop`` points of the teacher's. Chosen on validation; the test split is read once, at the end."""

    objective: Literal["latency", "size"] = Field(
        "latency",
        description="latency: batch 1, 1 thread, benchmark.sequence_length tokens, as a ratio to the teacher's "
        "fp32 ONNX timed in the same interleaved run; size: the artifact's MB.",
    )
    max_drop: float = Field(
        1.0, ge=0, le=100, description="Validation accuracy points a trial may lose against the teacher."
    )
    trials: int = Field(12, ge=1, le=MAX_COUNT, description="Trials in the study (finished or pruned).")
    timeout_minutes: float | None = Field(
        None, gt=0, le=MAX_FACTOR, description="Stop starting trials after this long; null: no limit."
    )
    sampler: Literal["tpe", "random", "grid"] = Field(
        "tpe", description="Optuna sampler: TPE with the budget as a constraint, random, or the full grid."
    )
    startup_trials: int = Field(
        4, ge=1, le=MAX_COUNT, description="TPE: random trials before it models the space."
    )
    pruner: Literal["budget", "none"] = Field(
        "budget",
        description="budget: stop a trial when the validation accuracy after a recovery round already misses "
        "the budget (what is left would prune more); none: run every trial to the end.",
    )
    pruner_margin: float = Field(
        0.5,
        ge=0,
        le=100,
        description="Points beyond max_drop a recovery round may lose before the trial is stopped: below one "
        "standard error of a paired validation drop on ~1,300 examples (0.6-0.8 points where teacher and trial "
        "disagree on 5-9% of them), so noise alone rarely stops a trial; the choice still holds every trial to "
        "max_drop.",
    )
    latency_runs: int = Field(60, ge=3, le=MAX_COUNT, description="Timed runs per trial (interleaved).")
    latency_warmup: int = Field(5, ge=0, le=MAX_COUNT, description="Untimed runs first.")
    bootstrap: int = Field(
        1000, ge=100, le=MAX_COUNT, description="Paired bootstrap resamples for the validation-drop interval."
    )
    space: SearchSpace = Field(default_factory=SearchSpace, description="What the trials may change.")
