"""Accuracy guard for the int8 variants.

When a variant loses more validation accuracy than ``max_accuracy_drop`` against the fp32 student, node
groups (embeddings, each encoder layer, pooler, classifier) are kept in float one at a time, most
helpful first, as Neural Compressor's fallback does. How much each group helps is measured, not assumed:
the variant is re-quantized with that one group excluded and its logits compared with the fp32 ones.
Every measurement and the excluded nodes are recorded; a variant that stays over budget is shipped with
``within_tolerance: false`` so the report can mark it.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecompress.export.artifact import ArtifactChecks
from edgecompress.quantize.context import QuantContext
from edgecompress.training.metrics import split_metrics

_LAYER = re.compile(r"(?:layer|layers|block|blocks|h)[._](\d+)$")


def node_groups(onnx_path: Path, op_types: list[str]) -> dict[str, list[str]]:
    """Quantizable node names grouped by the module they come from, e.g. ``layer.2`` or ``classifier``
    (``other`` for nodes of the base model itself).

    Exported node names are module paths (``/bert/encoder/layer.2/output/dense/MatMul``); the base model's
    prefix (``bert``) is the part before ``embeddings``/``encoder``.
    """
    import onnx

    from edgecompress.export.clip import PREFIX

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    # the input clip (export/clip.py) computes on token ids only: nothing to keep in float there
    nodes = [n.name for n in graph.node if n.op_type in op_types and n.name and not n.name.startswith(PREFIX)]
    paths = {n: n.strip("/").split("/")[:-1] for n in nodes}
    bases = {p[0] for p in paths.values() if len(p) > 1 and p[1] in ("embeddings", "encoder")}
    groups: dict[str, list[str]] = {}
    for name, parts in paths.items():
        if parts and parts[0] in bases:
            parts = parts[1:]
        layer = next((m for m in map(_LAYER.match, parts) if m), None)
        if layer:
            key = f"layer.{layer.group(1)}"
        elif parts:
            key = parts[0]
        else:  # the base model's own glue (attention-mask arithmetic): one group, not one per node
            key = "other"
        groups.setdefault(key, []).append(name)
    return groups


def _validation_accuracy(onnx_path: Path, tokenizer, ctx: QuantContext) -> tuple[float, np.ndarray]:
    from edgecompress.export.onnx import ort_logits, ort_session

    texts, pairs = ctx.data.texts("validation")
    logits = ort_logits(ort_session(onnx_path), tokenizer, texts, ctx.max_length, 64, pairs)
    return split_metrics(logits, ctx.data, "validation")["accuracy"], logits


def _replace_folder(src: Path, dst: Path) -> None:
    for path in dst.iterdir():
        if path.is_file():
            path.unlink()
    for path in src.iterdir():
        shutil.copy2(path, dst / path.name)


def guard(
    cfg, qconfig, build: Callable[[Path, object], None], source_dir: Path, out_dir: Path, ctx: QuantContext
) -> ArtifactChecks:
    """``build(folder, qconfig)`` quantizes into ``folder``; runs it once, then the fallback if needed.

    Returns the ``accuracy_guard`` check (empty when the variant has no ``max_accuracy_drop``).
    """
    build(out_dir, qconfig)
    if cfg.max_accuracy_drop is None:
        return ArtifactChecks()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    fp32_acc, fp32_logits = _validation_accuracy(source_dir / "model.onnx", tokenizer, ctx)

    def drop(acc: float) -> float:
        return 100 * (fp32_acc - acc)

    acc, _ = _validation_accuracy(out_dir / "model.onnx", tokenizer, ctx)
    record = {
        "max_accuracy_drop": cfg.max_accuracy_drop,
        "fp32_validation_accuracy": fp32_acc,
        "first_validation_accuracy": acc,
        "excluded_groups": [],
        "excluded_nodes": [],
        "sensitivity": {},
        "steps": [],
    }
    best = {"accuracy": acc, "groups": [], "folder": out_dir}
    if drop(acc) > cfg.max_accuracy_drop and cfg.max_fallback_steps > 0:
        groups = node_groups(source_dir / "model.onnx", qconfig.operators_to_quantize)
        n = cfg.sensitivity_samples
        sub_texts, sub_pairs = ctx.data.texts("validation", n)

        def excluding(names: list[str], tag: str) -> Path:
            folder = ctx.scratch / f"fallback-{tag}"
            shutil.rmtree(folder, ignore_errors=True)
            build(
                folder, dataclasses.replace(qconfig, nodes_to_exclude=list(qconfig.nodes_to_exclude) + names)
            )
            return folder

        # how much keeping each group in float brings the logits back to the fp32 ones (lower is better)
        for i, (group, names) in enumerate(sorted(groups.items())):
            from edgecompress.export.onnx import ort_logits, ort_session

            folder = excluding(names, f"s{i}")
            logits = ort_logits(
                ort_session(folder / "model.onnx"), tokenizer, sub_texts, ctx.max_length, 64, sub_pairs
            )
            record["sensitivity"][group] = float(np.mean((logits - fp32_logits[:n]) ** 2))
            shutil.rmtree(folder, ignore_errors=True)
        ranked = sorted(record["sensitivity"], key=record["sensitivity"].__getitem__)
        excluded: list[str] = []
        for step, group in enumerate(ranked[: cfg.max_fallback_steps], 1):
            excluded.append(group)
            folder = excluding([n for g in excluded for n in groups[g]], f"step{step}")
            acc, _ = _validation_accuracy(folder / "model.onnx", tokenizer, ctx)
            record["steps"].append(
                {"excluded_groups": list(excluded), "validation_accuracy": acc, "drop_pts": drop(acc)}
            )
            if acc > best["accuracy"]:
                best = {"accuracy": acc, "groups": list(excluded), "folder": folder}
            if drop(acc) <= cfg.max_accuracy_drop:
                break
        if best["folder"] != out_dir:
            _replace_folder(best["folder"], out_dir)
        record["excluded_groups"] = best["groups"]
        record["excluded_nodes"] = sorted(n for g in best["groups"] for n in groups[g])
    record["validation_accuracy"] = best["accuracy"]
    record["drop_pts"] = drop(best["accuracy"])
    record["within_tolerance"] = record["drop_pts"] <= cfg.max_accuracy_drop
    return ArtifactChecks(accuracy_guard=record)
