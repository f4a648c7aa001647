"""edgecompress: distil, prune and quantize a transformer text classifier into small, fast ONNX artifacts."""

__version__ = "0.1.0"
