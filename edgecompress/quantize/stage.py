"""Quantize stage: one fp32 ONNX variant in, one quantized variant folder out (with its manifest).

The method is the config's type; ``registry.quantize`` finds its handler. Each handler works in a private
scratch folder (ONNX Runtime's calibrator and the accuracy guard's trials write there), removed afterwards.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgecompress.context import StageContext
from edgecompress.export.artifact import ArtifactInfo, read_manifest, write_manifest
from edgecompress.quantize.config import QuantVariantConfig
from edgecompress.quantize.context import QuantContext
from edgecompress.quantize.registry import quantize

STAGE_VERSION = 4  # 3: block-quantized embedding tables in the guard's ladder; 4: 7-bit weights on avx2/avx512


@dataclass(frozen=True)
class QuantInputs:
    source_dir: Path  # the fp32 variant folder
    source_variant: str  # its name, e.g. student-fp32
    variant: str  # the quantized variant's name, e.g. student-int8-dynamic
    where: str = "quantization"  # the recipe field of this variant, for errors
    source_model: Path | None = None  # the PyTorch model folder the fp32 variant was exported from


def run(cfg: QuantVariantConfig, inputs: QuantInputs, ctx: StageContext, out_dir: Path) -> ArtifactInfo:
    scratch = out_dir.with_name(f"{out_dir.name}.scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        qctx = QuantContext(ctx.data, ctx.max_length, ctx.seed, scratch, inputs.where, inputs.source_model)
        info = quantize(cfg, inputs.source_dir, out_dir, qctx)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    source = read_manifest(inputs.source_dir)
    info = {
        **info,
        "params": source["params"],
        "source_variant": inputs.source_variant,
        "labels": ctx.data.labels,
    }
    write_manifest(out_dir, inputs.variant, ctx.recipe, info)
    return info
