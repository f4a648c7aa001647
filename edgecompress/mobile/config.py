"""ONNX Runtime Mobile: which variants become .ort files, and how they are converted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT


class MobileConfig(StageConfig):
    """Chosen variants converted to ONNX Runtime's mobile ``.ort`` format with ONNX Runtime's own tools,
    checked with its mobile usability checker, loaded and run once."""

    variants: list[str] = Field(
        [], description="Variant names to convert, e.g. student-int4 or student-int8-dynamic; [] = none."
    )
    target_platform: Literal["arm", "amd64"] = Field(
        "arm",
        description="Device the .ort file is optimized for (convert_onnx_models_to_ort --target_platform).",
    )
    optimization_level: Literal["basic", "extended", "all"] = Field(
        "all",
        description="Graph optimizations saved into the .ort file; for arm, ONNX Runtime leaves out the "
        "x86-only layout ones.",
    )
    check_samples: int = Field(
        64,
        ge=1,
        le=MAX_COUNT,
        description="Validation examples run through the .ort file and compared with the .onnx one.",
    )
