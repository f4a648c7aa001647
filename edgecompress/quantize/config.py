"""Quantization variants: one typed config per method, each handled by a registered quantizer."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT, MAX_WIDTH

IsaPreset = Literal["auto", "avx2", "avx512", "avx512_vnni", "arm64"]


QuantSource = Literal["student", "pruned"]


class VariantBase(StageConfig):
    """What every quantized variant has: the fp32 models it is built from."""

    apply_to: list[QuantSource] = Field(
        ["student", "pruned"],
        min_length=1,
        description="fp32 models this variant is built from (variant '<model>-<name>'); 'pruned' needs a prune section.",
    )


def _block_size(value: int) -> int:
    # ONNX Runtime's MatMulNBits / GatherBlockQuantized take power-of-two blocks of at least 16
    if value < 16 or value & (value - 1):
        raise ValueError(f"group size {value} is not a power of two >= 16 (ONNX Runtime's block sizes)")
    return value


class AccuracyGuard(VariantBase):
    """Fields shared by the int8 variants: the accuracy budget and the fallback that tries to meet it."""

    max_accuracy_drop: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Largest validation-accuracy loss (points) against the fp32 student; beyond it the most "
        "sensitive node groups are kept in float, one at a time (block-quantized embedding tables climb "
        "int4 -> int8 -> float as steps of the same ladder). null = no guard.",
    )
    max_fallback_steps: int = Field(
        3,
        ge=0,
        le=MAX_COUNT,
        description="Fallback steps at most: node groups (embeddings, a layer, pooler, classifier) kept in "
        "float, or block-quantized embedding tables raised one rung.",
    )
    sensitivity_samples: int = Field(
        256, ge=1, le=MAX_COUNT, description="Validation examples used to rank node groups by logit error."
    )
    embeddings: Literal["per_tensor", "int8", "int4"] = Field(
        "per_tensor",
        description="Embedding tables: per_tensor = int8 with one scale per table (Optimum's quantized Gather); "
        "int8 / int4 = blocks of embedding_group_size along the hidden width, each with its own scale "
        "(ONNX Runtime's GatherBlockQuantized): int4 halves the bytes of the biggest table of a small model.",
    )
    embedding_group_size: int = Field(
        32,
        ge=16,
        le=MAX_WIDTH,
        description="Values per scale in block-quantized embedding tables (a power of two >= 16).",
    )

    @field_validator("embedding_group_size")
    @classmethod
    def _power_of_two_embedding_groups(cls, value: int) -> int:
        return _block_size(value)


class Int8DynamicConfig(AccuracyGuard):
    """int8 weights, activations quantized at run time (Optimum ORTQuantizer)."""

    method: Literal["int8_dynamic"] = "int8_dynamic"
    name: str = Field("int8-dynamic", pattern=r"^[A-Za-z0-9_.-]+$", description="Variant name in the report.")
    preset: IsaPreset = Field(
        "auto", description="Optimum preset named after the target ISA; auto reads this CPU."
    )
    per_channel: bool = Field(False, description="Per-output-channel weight scales.")
    reduce_range: bool | None = Field(
        None,
        description="7-bit weights: ONNX Runtime's u8s8 int8 kernels on CPUs without VNNI (presets avx2, avx512) "
        "add pairs of products in 16 bits and saturate; 7-bit weights cannot. null: on for those presets, off "
        "for avx512_vnni and arm64.",
    )


class Int8StaticConfig(AccuracyGuard):
    """int8 weights and activations with ranges calibrated on training samples (Optimum ORTQuantizer)."""

    method: Literal["int8_static"] = "int8_static"
    name: str = Field("int8-static", pattern=r"^[A-Za-z0-9_.-]+$")
    preset: IsaPreset = "auto"
    per_channel: bool = False
    reduce_range: bool | None = Field(
        None,
        description="7-bit weights: ONNX Runtime's u8s8 int8 kernels on CPUs without VNNI (presets avx2, avx512) "
        "add pairs of products in 16 bits and saturate; 7-bit weights cannot. null: on for those presets, off "
        "for avx512_vnni and arm64.",
    )
    calibration_samples: int = Field(
        256, ge=1, le=MAX_COUNT, description="Training examples used to calibrate ranges."
    )
    calibration_method: Literal["minmax", "percentile", "entropy"] = "minmax"
    percentile: float = Field(99.999, gt=50, le=100, description="For calibration_method: percentile.")


def _regexes(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"'{p}' is not a regular expression: {exc}") from None
    return patterns


class WeightOnlyAutotuneConfig(StageConfig):
    """The configurations INC's ``autotune`` tries until one is within ``tolerable_loss``: for each keep set,
    each group size, each algorithm, in the order listed."""

    algorithms: list[Literal["rtn", "gptq"]] = Field(
        ["rtn", "gptq"], min_length=1, description="Tried in this order."
    )
    group_sizes: list[Annotated[int, Field(ge=16, le=MAX_WIDTH)]] = Field(
        [128, 32], min_length=1, description="Tried in this order."
    )
    keep_fp32_options: list[list[str]] = Field(
        default_factory=lambda: [[]],
        min_length=1,
        description="Alternative sets of module-name regexes kept in float besides keep_fp32 (e.g. the "
        "last layer); each set is tried with every group size and algorithm.",
    )
    tolerable_loss: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="INC's relative loss: stop at the first trial with validation accuracy >= "
        "fp32 * (1 - tolerable_loss); otherwise keep the best trial.",
    )

    @field_validator("group_sizes")
    @classmethod
    def _power_of_two_sizes(cls, values: list[int]) -> list[int]:
        return [_block_size(v) for v in values]

    @field_validator("keep_fp32_options")
    @classmethod
    def _valid_regex_sets(cls, options: list[list[str]]) -> list[list[str]]:
        return [_regexes(o) for o in options]


class WeightOnlyConfig(VariantBase):
    """Weight-only 4- or 8-bit linear layers by Intel Neural Compressor, run as ONNX Runtime MatMulNBits."""

    method: Literal["weight_only"] = "weight_only"
    name: str = Field("int4", pattern=r"^[A-Za-z0-9_.-]+$", description="Variant name in the report.")
    algorithm: Literal["rtn", "gptq", "autotune"] = Field(
        "rtn", description="INC's RTNConfig, GPTQConfig, or autotune over the 'autotune' section."
    )
    bits: Literal[4, 8] = Field(4, description="Weight bits of the quantized linear layers.")
    group_size: int = Field(
        32,
        ge=16,
        le=MAX_WIDTH,
        description="Weights per scale, along the input width of linear layers (with algorithm autotune, "
        "autotune.group_sizes decide those) and the hidden width of embedding tables; a power of two >= 16 "
        "that divides every quantized width.",
    )
    symmetric: bool = Field(True, description="Symmetric scales (no zero points).")
    keep_fp32: list[str] = Field(
        [],
        description="Module-name regexes (matched from the start) kept in float; pooler and classifier "
        "(exported as Gemm) always stay float.",
    )
    embeddings: Literal["int4", "int8", "fp32"] = Field(
        "int4",
        description="Embedding tables: 4-bit (GatherBlockQuantized), 8-bit blocks, or float. Blocks of "
        "group_size along the hidden width.",
    )
    calibration_samples: int = Field(
        128, ge=1, le=MAX_COUNT, description="Training examples GPTQ calibrates on (unused by RTN)."
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        0,
        description="MatMulNBits accuracy_level: 0/1 = float32 compute, 2 = fp16, 3 = bf16, 4 = int8 "
        "activations (faster on some CPUs, less exact).",
    )
    min_agreement: float = Field(
        0.995,
        ge=0,
        le=1,
        description="Least argmax agreement between INC's PyTorch model and the ONNX artifact on the "
        "validation split; below it the stage fails.",
    )
    autotune: WeightOnlyAutotuneConfig = Field(
        default_factory=WeightOnlyAutotuneConfig, description="For algorithm: autotune."
    )

    @field_validator("group_size")
    @classmethod
    def _power_of_two_size(cls, value: int) -> int:
        return _block_size(value)

    @field_validator("keep_fp32")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        return _regexes(patterns)

    @model_validator(mode="after")
    def _asymmetric_8bit(self) -> WeightOnlyConfig:
        # INC 3.10 dequantizes (q - zero_point) through int8, which wraps for 8-bit asymmetric weights
        if self.bits == 8 and not self.symmetric:
            raise ValueError("bits 8 needs symmetric: true (INC's 8-bit asymmetric layers overflow int8)")
        return self


# Every quantization method's config; the recipe's union of variants and its error messages derive from it.
VARIANT_CONFIGS = (Int8DynamicConfig, Int8StaticConfig, WeightOnlyConfig)

QuantVariantConfig = Annotated[Union[VARIANT_CONFIGS], Field(discriminator="method")]  # noqa: UP007


def method_tag(config_type: type[VariantBase]) -> str:
    """The ``method`` value that selects ``config_type`` in a recipe."""
    return config_type.model_fields["method"].default


METHODS = tuple(method_tag(c) for c in VARIANT_CONFIGS)
