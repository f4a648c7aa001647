"""Quantization: one entry point, ``quantize(config, source_dir, out_dir, context)``; handlers are
registered per config type (torchao style), so a new method is a config class (listed in
``config.VARIANT_CONFIGS``) plus a handler module imported here."""

from edgecompress.quantize import int8, weight_only  # noqa: F401  (each registers its handlers)
from edgecompress.quantize.context import QuantContext
from edgecompress.quantize.registry import quantize

__all__ = ["QuantContext", "quantize"]
