"""Export stage: a PyTorch classifier folder in, a deployable ONNX variant folder out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecompress.context import StageContext
from edgecompress.export.artifact import ArtifactInfo, write_manifest
from edgecompress.export.config import ExportConfig
from edgecompress.export.onnx import check_parity, export
from edgecompress.modeling.layers import count_parameters
from edgecompress.modeling.loading import load_saved_classifier

STAGE_VERSION = (
    3  # 2: TextCNN convolutions exported as MatMul; 3: inputs clipped in the graph, tokenizer truncates
)


@dataclass(frozen=True)
class ExportInputs:
    model_dir: Path  # a PyTorch classifier folder (safetensors + tokenizer)
    variant: str  # the variant's name, e.g. student-fp32


def run(cfg: ExportConfig, inputs: ExportInputs, ctx: StageContext, out_dir: Path) -> ArtifactInfo:
    from transformers import AutoTokenizer

    model = load_saved_classifier(inputs.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(inputs.model_dir)
    onnx_path = export(model, tokenizer, out_dir, cfg.opset, ctx.max_length)
    texts, pairs = ctx.data.texts("validation", cfg.parity_samples)
    parity = check_parity(model, tokenizer, onnx_path, texts, ctx.max_length, cfg.parity_atol, pairs)
    info: ArtifactInfo = {
        "precision": "fp32",
        "params": count_parameters(model),
        "source_model": ctx.relative(inputs.model_dir),
        "parity_vs_pytorch": parity,
        "labels": ctx.data.labels,
    }
    write_manifest(out_dir, inputs.variant, ctx.recipe, info)
    return info
