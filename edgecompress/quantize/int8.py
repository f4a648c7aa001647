"""int8 through Hugging Face Optimum's ORTQuantizer: dynamic, and static with calibration."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from edgecompress.machine import isa_preset
from edgecompress.quantize.config import Int8DynamicConfig, Int8StaticConfig
from edgecompress.quantize.context import QuantContext, calibration_samples
from edgecompress.quantize.guard import guard
from edgecompress.quantize.registry import register


def _preset(name: str) -> str:
    return isa_preset() if name == "auto" else name


def _qconfig(cfg, is_static: bool):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    preset = _preset(cfg.preset)
    return preset, getattr(AutoQuantizationConfig, preset)(is_static=is_static, per_channel=cfg.per_channel)


def _quantize(source_dir: Path, out_dir: Path, qconfig, ranges=None) -> None:
    from optimum.onnxruntime import ORTQuantizer

    quantizer = ORTQuantizer.from_pretrained(source_dir, file_name="model.onnx")
    quantizer.quantize(
        save_dir=out_dir, quantization_config=qconfig, file_suffix=None, calibration_tensors_range=ranges
    )


def with_block_embeddings(cfg, source_dir: Path, ctx: QuantContext) -> tuple[Path, dict]:
    """The fp32 variant to hand to Optimum: as it is, or (``embeddings: int8 | int4``) a copy in the scratch
    folder whose embedding tables are already GatherBlockQuantized, which Optimum then leaves alone."""
    if cfg.embeddings == "per_tensor":
        return source_dir, {"embeddings": "per_tensor"}
    import shutil

    import onnx

    from edgecompress.quantize.nbits import block_quantize_embeddings

    folder = ctx.scratch / "block-embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    for path in source_dir.iterdir():
        if path.is_file() and path.name not in ("model.onnx", "manifest.json", "stage.json"):
            shutil.copy2(path, folder / path.name)
    model = onnx.load(str(source_dir / "model.onnx"))
    bits = {"int8": 8, "int4": 4}[cfg.embeddings]
    tables = block_quantize_embeddings(model, bits, cfg.embedding_group_size)
    onnx.save(model, str(folder / "model.onnx"))
    return folder, {
        "embeddings": cfg.embeddings,
        "embedding_group_size": cfg.embedding_group_size,
        "tables": tables,
    }


@register(Int8DynamicConfig)
def int8_dynamic(cfg: Int8DynamicConfig, source_dir: Path, out_dir: Path, ctx: QuantContext) -> dict:
    preset, qconfig = _qconfig(cfg, is_static=False)
    model_dir, embeddings = with_block_embeddings(cfg, source_dir, ctx)
    checked = guard(cfg, qconfig, lambda dst, qc: _quantize(model_dir, dst, qc), source_dir, out_dir, ctx)
    return {
        "precision": "int8",
        "method": "dynamic",
        "preset": preset,
        "per_channel": cfg.per_channel,
        "embedding_tables": embeddings,
        **checked,
    }


@contextlib.contextmanager
def _working_dir(path: Path):
    """ONNX Runtime's calibrator drops temporary files into the current directory."""
    path.mkdir(parents=True, exist_ok=True)
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@register(Int8StaticConfig)
def int8_static(cfg: Int8StaticConfig, source_dir: Path, out_dir: Path, ctx: QuantContext) -> dict:
    from onnxruntime.quantization import CalibrationMethod
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import CalibrationConfig
    from transformers import AutoTokenizer

    preset, qconfig = _qconfig(cfg, is_static=True)
    # Built by hand: AutoCalibrationConfig reads a `datasets.Dataset`'s attributes, and our samples are a list.
    # Histogram sizes are AutoCalibrationConfig's (and ONNX Runtime's) defaults per method.
    method, histogram = {
        "minmax": (CalibrationMethod.MinMax, {}),
        "percentile": (CalibrationMethod.Percentile, {"num_bins": 2048, "percentile": cfg.percentile}),
        "entropy": (CalibrationMethod.Entropy, {"num_bins": 128, "num_quantized_bins": 128}),
    }[cfg.calibration_method]
    calibration = CalibrationConfig(
        dataset_name="edgecompress-train",
        dataset_config_name="default",
        dataset_split="train",
        dataset_num_samples=cfg.calibration_samples,
        method=method,
        **histogram,
    )
    samples = calibration_samples(ctx, AutoTokenizer.from_pretrained(source_dir), cfg.calibration_samples)
    # the calibrator runs in the scratch directory: make every path absolute first
    source_dir, out_dir, scratch = source_dir.resolve(), out_dir.resolve(), ctx.scratch.resolve()
    model_dir, embeddings = with_block_embeddings(cfg, source_dir, ctx)
    model_dir = model_dir.resolve()
    quantizer = ORTQuantizer.from_pretrained(model_dir, file_name="model.onnx")
    # calibration writes an augmented model (and a model-sized .data file) next to it: keep that in scratch
    with _working_dir(scratch):
        ranges = quantizer.fit(
            dataset=samples,
            calibration_config=calibration,
            onnx_augmented_model_name=scratch / "augmented_model.onnx",
            operators_to_quantize=qconfig.operators_to_quantize,
        )
    checked = guard(
        cfg, qconfig, lambda dst, qc: _quantize(model_dir, dst, qc, ranges), source_dir, out_dir, ctx
    )
    return {
        "precision": "int8",
        "method": "static",
        "preset": preset,
        "per_channel": cfg.per_channel,
        "calibration": {"samples": len(samples), "method": cfg.calibration_method},
        "embedding_tables": embeddings,
        **checked,
    }
