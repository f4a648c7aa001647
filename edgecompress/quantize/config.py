"""Quantization variants: one typed config per method, each handled by a registered quantizer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgecompress.config_base import StageConfig

IsaPreset = Literal["auto", "avx2", "avx512", "avx512_vnni", "arm64"]


class Int8DynamicConfig(StageConfig):
    """int8 weights, activations quantized at run time (Optimum ORTQuantizer)."""

    method: Literal["int8_dynamic"] = "int8_dynamic"
    name: str = Field("int8-dynamic", pattern=r"^[A-Za-z0-9_.-]+$", description="Variant name in the report.")
    preset: IsaPreset = Field(
        "auto", description="Optimum preset named after the target ISA; auto reads this CPU."
    )
    per_channel: bool = Field(False, description="Per-output-channel weight scales.")


class Int8StaticConfig(StageConfig):
    """int8 weights and activations with ranges calibrated on training samples (Optimum ORTQuantizer)."""

    method: Literal["int8_static"] = "int8_static"
    name: str = Field("int8-static", pattern=r"^[A-Za-z0-9_.-]+$")
    preset: IsaPreset = "auto"
    per_channel: bool = False
    calibration_samples: int = Field(256, ge=1, description="Training examples used to calibrate ranges.")
    calibration_method: Literal["minmax", "percentile", "entropy"] = "minmax"
    percentile: float = Field(99.999, gt=50, le=100, description="For calibration_method: percentile.")


QuantVariantConfig = Annotated[Int8DynamicConfig | Int8StaticConfig, Field(discriminator="method")]
