"""The quantizer registry (handlers keyed by config type, torchao style) and its single entry point.

Handlers register themselves when their module is imported (``quantize/__init__.py`` imports them all);
this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgecompress.quantize.context import QuantContext
from edgecompress.registry import Registry

Quantizer = Callable[..., dict]
QUANTIZERS: Registry[Quantizer] = Registry("quantization method")


def register(config_type: type) -> Callable[[Quantizer], Quantizer]:
    return QUANTIZERS.register(config_type)


def quantize(config, source_dir: Path, out_dir: Path, context: QuantContext) -> dict:
    """Quantize the fp32 ONNX variant in ``source_dir`` into ``out_dir``; returns what was done."""
    return QUANTIZERS.get(type(config))(config, source_dir, out_dir, context)
