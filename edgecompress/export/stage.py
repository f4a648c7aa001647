"""Export stage: a PyTorch classifier folder in, a deployable ONNX variant folder out."""

from __future__ import annotations

from pathlib import Path

from edgecompress.data.examples import PreparedData
from edgecompress.export.artifact import write_manifest
from edgecompress.export.config import ExportConfig
from edgecompress.export.onnx import check_parity, export
from edgecompress.modeling.loading import load_saved_classifier

STAGE_VERSION = 1


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def run(
    cfg: ExportConfig,
    model_dir: Path,
    data: PreparedData,
    out_dir: Path,
    variant: str,
    recipe: dict,
    max_length: int,
) -> dict:
    from transformers import AutoTokenizer

    model = load_saved_classifier(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    onnx_path = export(model, tokenizer, out_dir, cfg.opset)
    texts, pairs = data.texts("validation", cfg.parity_samples)
    parity = check_parity(model, tokenizer, onnx_path, texts, max_length, cfg.parity_atol, pairs)
    info = {
        "precision": "fp32",
        "params": count_parameters(model),
        "source_model": str(model_dir),
        "parity_vs_pytorch": parity,
        "labels": data.labels,
    }
    write_manifest(out_dir, variant, recipe, info)
    return info
