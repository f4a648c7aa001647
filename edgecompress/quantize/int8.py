"""int8 through Hugging Face Optimum's ORTQuantizer: dynamic, and static with calibration."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from edgecompress.export.artifact import copy_companions
from edgecompress.inputs import graph_inputs
from edgecompress.machine import isa_preset
from edgecompress.quantize.config import Int8DynamicConfig, Int8StaticConfig
from edgecompress.quantize.context import QuantContext, calibration_samples
from edgecompress.quantize.guard import TableLadder, guard
from edgecompress.quantize.registry import register


def _preset(name: str) -> str:
    return isa_preset() if name == "auto" else name


SATURATING_PRESETS = ("avx2", "avx512")  # u8s8 kernels without VNNI: 16-bit pair sums (vpmaddubsw)


def reduce_range(cfg, preset: str) -> bool:
    """7-bit weights where the preset's int8 kernels saturate, unless the recipe says otherwise."""
    return preset in SATURATING_PRESETS if cfg.reduce_range is None else cfg.reduce_range


def _qconfig(cfg, is_static: bool):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    preset = _preset(cfg.preset)
    qconfig = getattr(AutoQuantizationConfig, preset)(is_static=is_static, per_channel=cfg.per_channel)
    # set on the config itself: Optimum's avx512_vnni and arm64 presets take no reduce_range argument
    return preset, dataclasses.replace(qconfig, reduce_range=reduce_range(cfg, preset))


TABLE_BITS = {"int4": 4, "int8": 8}


@dataclass(frozen=True)
class BlockTables:
    """Embedding tables stored as ONNX Runtime GatherBlockQuantized blocks instead of Optimum's int8 Gather;
    ``precision`` fp32 leaves them float (the accuracy guard's last rung)."""

    precision: str  # int4 | int8 | fp32
    group_size: int
    gathers: tuple[str, ...]  # the fp32 graph's embedding Gather nodes: Optimum leaves them alone
    shapes: tuple[tuple[str, tuple[int, int]], ...]  # (table, its shape) for each of them
    narrow: tuple[tuple[str, tuple[int, int]], ...] = ()  # tables narrower than a block: left to Optimum

    def at(self, precision: str | None) -> BlockTables:
        return self if precision is None else dataclasses.replace(self, precision=precision)

    def ladder(self) -> TableLadder:
        """This precision, then every higher one up to float: the guard's steps for the tables."""
        rungs = ("int4", "int8", "fp32")
        return TableLadder(rungs[rungs.index(self.precision) :], self.gathers)

    def record(self, checked: dict) -> dict:
        """What the tables ended up as: the precision asked, and the one the accuracy guard chose."""
        chosen = (checked.get("accuracy_guard") or {}).get("embedding_tables", {}).get("chosen")
        chosen = chosen or self.precision
        record = {
            "embeddings": chosen,
            "asked": self.precision,
            "embedding_group_size": self.group_size,
            "tables": {} if chosen == "fp32" else {name: list(shape) for name, shape in self.shapes},
        }
        if self.narrow:
            record["narrower_than_a_block"] = {name: list(shape) for name, shape in self.narrow}
        return record


def block_tables(cfg, source_dir: Path) -> BlockTables | None:
    if cfg.embeddings == "per_tensor":
        return None
    import onnx

    from edgecompress.quantize.nbits import embedding_gathers, narrower_than_a_block

    graph = onnx.load(str(source_dir / "model.onnx"), load_external_data=False).graph
    found = embedding_gathers(graph)
    narrow = narrower_than_a_block({n: t.shape for n, (_, t) in found.items()}, cfg.embedding_group_size)
    found = {name: pair for name, pair in found.items() if name not in narrow}
    names = tuple(node.name for node, _ in found.values())
    shapes = tuple((name, tuple(table.shape)) for name, (_, table) in found.items())
    left = tuple((name, tuple(shape)) for name, shape in narrow.items())
    return BlockTables(cfg.embeddings, cfg.embedding_group_size, names, shapes, left)


def keep_float_nodes(graph) -> list[str]:
    """Nodes of ``graph`` that some encoder family needs in float whatever int8 does (ModernBERT's rotary-angle
    MatMuls: modeling.encoders ``int8_keep_float``)."""
    import re

    from edgecompress.modeling.encoders import SUPPORTED

    found = (SUPPORTED.get(k).int8_keep_float for k in SUPPORTED.keys())
    patterns = [re.compile(x) for group in found for x in group]
    return [n.name for n in graph.node if any(p.search(n.name) for p in patterns)]


def _quantize(
    source_dir: Path, out_dir: Path, qconfig, ranges=None, blocks: BlockTables | None = None
) -> None:
    """Optimum's ORTQuantizer on ``source_dir``; with ``blocks`` the embedding Gathers are left to it as float
    and then (unless ``blocks.precision`` is fp32) rewritten as GatherBlockQuantized. The nodes a family
    needs in float (keep_float_nodes) are always excluded."""
    import onnx
    from optimum.onnxruntime import ORTQuantizer

    graph = onnx.load(str(source_dir / "model.onnx"), load_external_data=False).graph
    keep = [n for n in keep_float_nodes(graph) if n not in qconfig.nodes_to_exclude]
    if keep:
        qconfig = dataclasses.replace(qconfig, nodes_to_exclude=list(qconfig.nodes_to_exclude) + keep)
    if blocks is not None:
        qconfig = dataclasses.replace(
            qconfig, nodes_to_exclude=list(qconfig.nodes_to_exclude) + list(blocks.gathers)
        )
    quantizer = ORTQuantizer.from_pretrained(source_dir, file_name="model.onnx")
    quantizer.quantize(
        save_dir=out_dir, quantization_config=qconfig, file_suffix=None, calibration_tensors_range=ranges
    )
    copy_companions(source_dir, out_dir)  # what Optimum does not carry for a model it does not know
    if blocks is None or blocks.precision == "fp32":
        return

    from edgecompress.quantize.nbits import block_quantize_embeddings

    model = onnx.load(str(out_dir / "model.onnx"))
    block_quantize_embeddings(model, TABLE_BITS[blocks.precision], blocks.group_size, names=blocks.gathers)
    onnx.save(model, str(out_dir / "model.onnx"))


@register(Int8DynamicConfig)
def int8_dynamic(cfg: Int8DynamicConfig, source_dir: Path, out_dir: Path, ctx: QuantContext) -> dict:
    preset, qconfig = _qconfig(cfg, is_static=False)
    blocks = block_tables(cfg, source_dir)

    def build(dst: Path, qc, table_precision: str | None) -> None:
        _quantize(source_dir, dst, qc, blocks=blocks and blocks.at(table_precision))

    checked = guard(cfg, qconfig, build, source_dir, out_dir, ctx, blocks and blocks.ladder())
    return {
        "precision": "int8",
        "method": "dynamic",
        "preset": preset,
        "per_channel": cfg.per_channel,
        "reduce_range": reduce_range(cfg, preset),
        "embedding_tables": blocks.record(checked) if blocks else {"embeddings": "per_tensor"},
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
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    inputs = graph_inputs(source_dir / "model.onnx")
    samples = calibration_samples(ctx, tokenizer, cfg.calibration_samples, inputs)
    # the calibrator runs in the scratch directory: make every path absolute first
    source_dir, out_dir, scratch = source_dir.resolve(), out_dir.resolve(), ctx.scratch.resolve()
    blocks = block_tables(cfg, source_dir)
    quantizer = ORTQuantizer.from_pretrained(source_dir, file_name="model.onnx")
    # calibration writes an augmented model (and a model-sized .data file) next to it: keep that in scratch
    with _working_dir(scratch):
        ranges = quantizer.fit(
            dataset=samples,
            calibration_config=calibration,
            onnx_augmented_model_name=scratch / "augmented_model.onnx",
            operators_to_quantize=qconfig.operators_to_quantize,
        )

    def build(dst: Path, qc, table_precision: str | None) -> None:
        _quantize(source_dir, dst, qc, ranges, blocks and blocks.at(table_precision))

    checked = guard(cfg, qconfig, build, source_dir, out_dir, ctx, blocks and blocks.ladder())
    return {
        "precision": "int8",
        "method": "static",
        "preset": preset,
        "per_channel": cfg.per_channel,
        "reduce_range": reduce_range(cfg, preset),
        "calibration": {"samples": len(samples), "method": cfg.calibration_method},
        "embedding_tables": blocks.record(checked) if blocks else {"embeddings": "per_tensor"},
        **checked,
    }
