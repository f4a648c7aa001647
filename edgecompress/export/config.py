"""ONNX export and its parity check."""

from __future__ import annotations

from pydantic import Field

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT, MAX_FACTOR


class ExportConfig(StageConfig):
    """Export through Optimum (dynamic batch and sequence axes) and compare with PyTorch."""

    opset: int = Field(17, ge=14, le=21)
    parity_samples: int = Field(
        128, ge=1, le=MAX_COUNT, description="Validation examples compared PyTorch vs ONNX Runtime."
    )
    parity_atol: float = Field(
        1e-3,
        gt=0,
        le=MAX_FACTOR,
        description="Largest allowed |logit difference|; beyond it the stage fails.",
    )
