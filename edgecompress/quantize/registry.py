"""The quantizer registry and its single entry point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecompress.data.examples import PreparedData
from edgecompress.registry import Registry


@dataclass
class QuantContext:
    """What a quantizer may need beyond its config: data for calibration, the sequence length, a seed."""

    data: PreparedData
    max_length: int
    seed: int
    scratch: Path  # a private working folder, deleted afterwards
    where: str = "quantization"  # the recipe field of this variant, for errors


Quantizer = Callable[..., dict]
QUANTIZERS: Registry[Quantizer] = Registry("quantization method")


def register(config_type: type) -> Callable[[Quantizer], Quantizer]:
    return QUANTIZERS.register(config_type)


def quantize(config, source_dir: Path, out_dir: Path, context: QuantContext) -> dict:
    """Quantize the fp32 ONNX variant in ``source_dir`` into ``out_dir``; returns what was done."""
    from edgecompress.quantize import int8, weight_only  # noqa: F401  (registers the handlers)

    return QUANTIZERS.get(type(config))(config, source_dir, out_dir, context)
