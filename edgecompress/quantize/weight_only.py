"""Weight-only 4/8-bit: Intel Neural Compressor quantizes the student's linear layers in PyTorch (RTN, GPTQ
or accuracy-aware autotune), and the fp32 ONNX graph is rewritten to carry INC's own packed values as
ONNX Runtime MatMulNBits nodes; embedding tables become GatherBlockQuantized. The artifact is checked
against INC's PyTorch model on the validation split.

Pooler and classifier are exported as Gemm, which MatMulNBits does not replace: they stay float (INC is told
to keep them float too, so both models are the same model).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

from edgecompress.errors import RecipeError, StageError
from edgecompress.export.artifact import copy_companions, read_manifest
from edgecompress.inputs import model_inputs
from edgecompress.quantize import inc
from edgecompress.quantize.config import WeightOnlyConfig
from edgecompress.quantize.context import QuantContext, calibration_samples
from edgecompress.quantize.nbits import (
    BlockQuantized,
    find_weight_nodes,
    narrower_than_a_block,
    quantize_table,
    rewrite_graph,
    unpack_inc_linear,
)
from edgecompress.quantize.registry import register
from edgecompress.training.metrics import split_metrics

_TABLES_APPLIED = "_edgecompress_quantized_tables"


def check_group_size(group_size: int, widths: dict[str, int], where: str) -> None:
    """Every quantized width must split into whole groups (INC and ONNX Runtime would pad differently)."""
    for name, width in widths.items():
        if width % group_size:
            raise RecipeError(
                f"group size {group_size} does not divide the width {width} of '{name}'", where=where
            )


def _kept(patterns: list[str], names: list[str], where: str) -> set[str]:
    kept: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if re.match(pattern, n)}
        if not hits:
            raise RecipeError(
                f"'{pattern}' matches no quantizable linear layer (they are named like '{names[0]}')",
                where=where,
            )
        kept |= hits
    return kept


def apply_tables(model, modules: dict, tables: dict[str, BlockQuantized]) -> None:
    """Put the quantized embedding tables (dequantized, as ONNX Runtime computes them) into ``model``."""
    import torch

    if getattr(model, _TABLES_APPLIED, False):
        return
    named = dict(model.named_modules())
    for name, table in tables.items():
        named[name].weight.data = torch.from_numpy(table.dequantize())
    setattr(model, _TABLES_APPLIED, True)


def _validate(cfg: WeightOnlyConfig, linears: dict, names: list[str], tables: dict[str, int], where: str):
    """Impossible settings fail here, before any quantization work, naming the recipe field.

    Returns the keep sets to try: ``[(patterns, module names kept in float)]`` (one unless autotune).
    """
    tuned = cfg.algorithm == "autotune"
    options = cfg.autotune.keep_fp32_options if tuned else [[]]
    keep_where = f"{where}.autotune.keep_fp32_options" if tuned else f"{where}.keep_fp32"
    always = _kept(cfg.keep_fp32, names, f"{where}.keep_fp32")
    keep_sets = []
    for option in options:  # autotune's options add to keep_fp32
        kept = always | _kept(option, names, keep_where)
        if len(kept) == len(names):
            raise RecipeError(
                "every quantizable linear layer is kept in float: nothing to quantize", where=keep_where
            )
        keep_sets.append((cfg.keep_fp32 + option, kept))
    sizes = cfg.autotune.group_sizes if tuned else [cfg.group_size]
    for size in sizes:
        check_group_size(
            size,
            {n: linears[n].in_features for n in names},
            f"{where}.autotune.group_sizes" if tuned else f"{where}.group_size",
        )
    check_group_size(cfg.group_size, tables, f"{where}.group_size")
    return keep_sets


@register(WeightOnlyConfig)
def weight_only(cfg: WeightOnlyConfig, source_dir: Path, out_dir: Path, ctx: QuantContext) -> dict:
    import onnx
    import torch
    from transformers import AutoTokenizer

    from edgecompress.export.onnx import compare_logits, ort_logits, ort_session, torch_logits
    from edgecompress.modeling.loading import load_saved_classifier

    where = ctx.where
    model_dir = ctx.source_model or Path(read_manifest(source_dir)["source_model"])
    fp32 = load_saved_classifier(model_dir)  # pruned models may have unequal layer widths
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    graph_model = onnx.load(str(source_dir / "model.onnx"))

    # which PyTorch modules the ONNX MatMuls / Gathers hold (by weight value: names differ between the two)
    linears = {n: m for n, m in fp32.named_modules() if isinstance(m, torch.nn.Linear)}
    matmuls = find_weight_nodes(
        graph_model.graph, {n: m.weight.detach().numpy().T for n, m in linears.items()}, "MatMul", 1
    )
    if not matmuls:
        raise StageError("no MatMul in the ONNX graph holds a linear layer's weight", where=where)
    names = [n for n in linears if n in matmuls]
    embeddings = {n: m for n, m in fp32.named_modules() if isinstance(m, torch.nn.Embedding)}
    narrow = narrower_than_a_block({n: tuple(m.weight.shape) for n, m in embeddings.items()}, cfg.group_size)
    embeddings = {n: m for n, m in embeddings.items() if n not in narrow}
    gathers = {}
    if cfg.embeddings != "fp32":
        weights = {n: m.weight.detach().numpy() for n, m in embeddings.items()}
        gathers = find_weight_nodes(graph_model.graph, weights, "Gather", 0)
    keep_sets = _validate(cfg, linears, names, {n: embeddings[n].embedding_dim for n in gathers}, where)

    bits = {"int4": 4, "int8": 8}.get(cfg.embeddings)
    tables = {
        n: quantize_table(embeddings[n].weight.detach().numpy(), bits, cfg.group_size, cfg.symmetric)
        for n in gathers
    }
    samples = calibration_samples(ctx, tokenizer, cfg.calibration_samples, model_inputs(fp32))

    @torch.no_grad()
    def calibrate(model) -> None:
        for sample in samples:
            model(**{k: torch.from_numpy(v)[None] for k, v in sample.items()})

    texts, pairs = ctx.data.texts("validation")

    def accuracy(model) -> float:
        logits = torch_logits(model, tokenizer, texts, ctx.max_length, batch_size=64, pairs=pairs)
        return split_metrics(logits, ctx.data, "validation")["accuracy"]

    def fp32_names(keep: set[str]) -> list[str]:
        return sorted(set(linears) - set(names) | keep)

    def config(algorithm: str, size: int, keep: set[str]):
        return inc.inc_config(algorithm, cfg.bits, size, cfg.symmetric, fp32_names(keep), model_dir)

    tuning = None
    if cfg.algorithm == "autotune":
        trials = [
            {
                "algorithm": algorithm,
                "group_size": size,
                "keep_fp32": patterns,
                "quantized": sorted(set(names) - keep),
                "config": config(algorithm, size, keep),
            }
            for patterns, keep in keep_sets  # INC tries them in this order
            for size in cfg.autotune.group_sizes
            for algorithm in cfg.autotune.algorithms
        ]
        qmodel, tuning = inc.autotune(
            fp32,
            trials,
            cfg.autotune.tolerable_loss,
            evaluate=accuracy,
            calibrate=calibrate if "gptq" in cfg.autotune.algorithms else None,
            prepare_trial=lambda m: apply_tables(m, embeddings, tables),
        )
        chosen = trials[tuning["chosen"] - 1]
        algorithm, group_size = chosen["algorithm"], chosen["group_size"]
    else:
        algorithm, group_size = cfg.algorithm, cfg.group_size
        qmodel = inc.quantize(
            copy.deepcopy(fp32),
            config(algorithm, group_size, keep_sets[0][1]),
            calibrate if algorithm == "gptq" else None,
        )
    apply_tables(qmodel, embeddings, tables)
    qmodel.eval()

    # INC's packed integers, unpacked bit for bit, become MatMulNBits nodes
    from neural_compressor.torch.algorithms.weight_only.modules import INCWeightOnlyLinear

    layers = {
        n: unpack_inc_linear(m) for n, m in qmodel.named_modules() if isinstance(m, INCWeightOnlyLinear)
    }
    stray = sorted(set(layers) - set(matmuls))
    if stray or not layers:
        raise StageError(f"INC quantized layers the ONNX graph has no MatMul for: {stray}", where=where)
    graph_info = rewrite_graph(graph_model, matmuls, layers, gathers, tables, cfg.accuracy_level)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(graph_model, str(out_dir / "model.onnx"))
    copy_companions(source_dir, out_dir)

    # the artifact must be INC's model: compare logits on the whole validation split
    reference = torch_logits(qmodel, tokenizer, texts, ctx.max_length, batch_size=64, pairs=pairs)
    candidate = ort_logits(ort_session(out_dir / "model.onnx"), tokenizer, texts, ctx.max_length, 64, pairs)
    agreement = compare_logits(reference, candidate)
    agreement["min_agreement"] = cfg.min_agreement
    if agreement["argmax_agreement"] < cfg.min_agreement:
        raise StageError(
            f"the ONNX artifact agrees with INC's PyTorch model on {agreement['argmax_agreement']:.4f} of "
            f"{agreement['samples']} validation examples (< min_agreement {cfg.min_agreement}); "
            f"max |logit difference| {agreement['max_abs_logit_diff']:.3g}",
            where=where,
        )
    return {
        "precision": f"int{cfg.bits}",
        "method": "weight_only",
        "algorithm": algorithm,
        "bits": cfg.bits,
        "group_size": group_size,
        "symmetric": cfg.symmetric,
        "embeddings": cfg.embeddings,
        "accuracy_level": cfg.accuracy_level,
        "quantized_layers": sorted(layers),
        "float_layers": fp32_names(set(names) - set(layers)),
        "quantized_embeddings": sorted(tables),
        "graph": graph_info,
        "inc_vs_onnx": agreement,
        "validation_accuracy": {
            "inc_pytorch": split_metrics(reference, ctx.data, "validation")["accuracy"],
            "onnx": split_metrics(candidate, ctx.data, "validation")["accuracy"],
        },
        "autotune": tuning,
    }
