"""How the variants are measured with ONNX Runtime on CPU."""

from __future__ import annotations

from pydantic import Field, field_validator

from edgecompress.config_base import StageConfig


class BenchmarkConfig(StageConfig):
    """Latency per (batch size, threads) at a fixed sequence length; accuracy/F1 on the test split."""

    sequence_length: int | None = Field(None, ge=1, description="Tokens per input; default data.max_length.")
    batch_sizes: list[int] = Field([1, 8], min_length=1, description="Batch sizes timed; must include 1.")
    threads: list[int] = Field(
        [1, 0],
        min_length=1,
        description="intra-op threads timed; 0 = all cores. Must include 1 (the mobile-class profile).",
    )
    runs: int = Field(100, ge=1, description="Timed runs per variant and setting, after warm-up.")
    warmup: int = Field(10, ge=0)
    eval_batch_size: int = Field(64, ge=1, description="Batch size for the accuracy pass.")

    @field_validator("batch_sizes", "threads")
    @classmethod
    def _has_one(cls, values: list[int]) -> list[int]:
        if 1 not in values:
            raise ValueError("must include 1: the report's headline latency is batch 1, 1 thread")
        if any(v < 0 for v in values):
            raise ValueError("values must be >= 0")
        return sorted(set(values))
