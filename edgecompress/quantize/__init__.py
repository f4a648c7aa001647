"""Quantization: one entry point, ``quantize(config, source_dir, out_dir, context)``; handlers are
registered per config type (torchao style), so a new method is a config class plus a handler."""

from edgecompress.quantize.registry import QuantContext, quantize

__all__ = ["QuantContext", "quantize"]
