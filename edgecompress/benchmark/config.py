"""How the variants are measured with ONNX Runtime on CPU."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT, MAX_THREADS, MAX_TOKENS


class MobileProfile(StageConfig):
    """The mobile-class profile: 1 thread, batch 1, a short and a typical input, and each variant's peak
    resident memory in a fresh process that loads it and runs one input."""

    short_length: int = Field(
        16, ge=2, le=MAX_TOKENS, description="Tokens of the short input (at most data.max_length)."
    )
    typical_length: int | None = Field(
        None,
        ge=2,
        le=MAX_TOKENS,
        description="Tokens of the typical input (at most data.max_length); default the median validation "
        "length.",
    )
    runs: int = Field(50, ge=1, le=MAX_COUNT, description="Timed runs per variant and length, after warm-up.")
    warmup: int = Field(5, ge=0, le=MAX_COUNT)
    memory: bool = Field(True, description="Measure peak RSS (one child process per variant).")


class BenchmarkConfig(StageConfig):
    """Latency per (batch size, threads) at a fixed sequence length; accuracy/F1 on the test split."""

    sequence_length: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKENS,
        description="Tokens per input (at most data.max_length: the artifacts truncate to it); default "
        "data.max_length.",
    )
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] = Field(
        [1, 8],
        min_length=1,
        description="Batch sizes timed; must include 1.",
    )
    threads: list[Annotated[int, Field(ge=0, le=MAX_THREADS)]] = Field(
        [1, 0],
        min_length=1,
        description="intra-op threads timed; 0 = all cores. Must include 1 (the mobile-class profile).",
    )
    runs: int = Field(
        100, ge=1, le=MAX_COUNT, description="Timed runs per variant and setting, after warm-up."
    )
    warmup: int = Field(10, ge=0, le=MAX_COUNT)
    eval_batch_size: int = Field(64, ge=1, le=MAX_COUNT, description="Batch size for the accuracy pass.")
    mobile: MobileProfile | None = Field(None, description="The mobile-class profile; null = not measured.")

    def headline_only(self, runs: int | None = None) -> BenchmarkConfig:
        """Batch 1 and 1 thread only (the report's headline), no mobile profile: for the studies that time many
        artifacts in one run."""
        return self.model_copy(
            update={"batch_sizes": [1], "threads": [1], "mobile": None, "runs": runs or self.runs}
        )

    @field_validator("batch_sizes", "threads")
    @classmethod
    def _include_one(cls, values: list[int]) -> list[int]:
        if 1 not in values:
            raise ValueError("must include 1: the report's headline latency is batch 1, 1 thread")
        return sorted(set(values))
