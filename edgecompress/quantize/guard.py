"""Accuracy guard for the int8 variants.

When a variant loses more validation accuracy than ``max_accuracy_drop`` against the fp32 student, node
groups (embeddings, each encoder layer, pooler, classifier) are kept in float one at a time, most
helpful first, as Neural Compressor's fallback does. How much each group helps is measured, not assumed:
the variant is re-quantized with that one group excluded and its logits compared with the fp32 ones.
A variant with block-quantized embedding tables (``embeddings: int4 | int8``) has its tables as further
steps of the same ladder, int4 blocks -> int8 blocks -> float, measured and ranked like the groups (the
tables climb one rung per step). Every measurement, the excluded nodes and the tables' chosen precision are
recorded; a variant that stays over budget is shipped with ``within_tolerance: false`` so the report can
mark it.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TableLadder:
    """A block-table variant's embedding tables as rungs of the fallback ladder: its own precision first, then
    each higher one up to float (int4 -> int8 -> fp32). Their Gather nodes are never Optimum's to quantize
    (nodes_to_exclude), so keeping them "in float" as a node group would change nothing."""

    rungs: tuple[str, ...]
    gathers: tuple[str, ...]

    def step(self, precision: str) -> str:
        """The ladder step (and sensitivity key) that raises the tables to ``precision``."""
        return f"embeddings:{precision}"


Build = Callable[[Path, object, "str | None"], None]


def guard(
    cfg,
    qconfig,
    build: Build,
    source_dir: Path,
    out_dir: Path,
    ctx: QuantContext,
    tables: TableLadder | None = None,
) -> ArtifactChecks:
    """``build(folder, qconfig, table_precision)`` quantizes into ``folder``; runs it once, then the fallback
    if needed. The fallback's steps keep one more node group in float or, with ``tables``, raise the embedding
    tables one rung; the precision is None without ``tables``.

    Returns the ``accuracy_guard`` check (empty when the variant has no ``max_accuracy_drop``).
    """
    first_tables = tables.rungs[0] if tables else None
    build(out_dir, qconfig, first_tables)
    if cfg.max_accuracy_drop is None:
        return ArtifactChecks()
    from transformers import AutoTokenizer

    from edgecompress.export.onnx import ort_logits, ort_session

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
    best = {"accuracy": acc, "groups": [], "tables": first_tables, "folder": out_dir}
    if drop(acc) > cfg.max_accuracy_drop and cfg.max_fallback_steps > 0:
        groups = node_groups(source_dir / "model.onnx", qconfig.operators_to_quantize)
        raises = {}  # ladder step -> the table precision it sets
        if tables:
            for name in list(groups):
                groups[name] = [n for n in groups[name] if n not in tables.gathers]
                if not groups[name]:
                    del groups[name]
            raises = {tables.step(p): p for p in tables.rungs[1:]}
        n = cfg.sensitivity_samples
        sub_texts, sub_pairs = ctx.data.texts("validation", n)

        def trial(kept: list[str], table_precision: str | None, tag: str) -> Path:
            folder = ctx.scratch / f"fallback-{tag}"
            shutil.rmtree(folder, ignore_errors=True)
            names = [node for g in kept for node in groups[g]]
            qc = dataclasses.replace(qconfig, nodes_to_exclude=list(qconfig.nodes_to_exclude) + names)
            build(folder, qc, table_precision)
            return folder

        # how much each step alone (one group kept in float, or the tables one rung up) brings the logits back
        # to the fp32 ones (lower is better)
        alone = {g: ([g], first_tables) for g in sorted(groups)} | {k: ([], p) for k, p in raises.items()}
        for i, (key, (kept, table_precision)) in enumerate(alone.items()):
            folder = trial(kept, table_precision, f"s{i}")
            logits = ort_logits(
                ort_session(folder / "model.onnx"), tokenizer, sub_texts, ctx.max_length, 64, sub_pairs
            )
            record["sensitivity"][key] = float(np.mean((logits - fp32_logits[:n]) ** 2))
            shutil.rmtree(folder, ignore_errors=True)
        ranked = sorted(record["sensitivity"], key=record["sensitivity"].__getitem__)
        # the tables climb one rung at a time: their steps keep their ranked places, in ladder order
        places = [i for i, key in enumerate(ranked) if key in raises]
        for i, key in zip(places, raises, strict=True):
            ranked[i] = key
        excluded: list[str] = []
        table_precision = first_tables
        for step, key in enumerate(ranked[: cfg.max_fallback_steps], 1):
            if key in raises:
                table_precision = raises[key]
            else:
                excluded.append(key)
            folder = trial(excluded, table_precision, f"step{step}")
            acc, _ = _validation_accuracy(folder / "model.onnx", tokenizer, ctx)
            done = {"excluded_groups": list(excluded), "validation_accuracy": acc, "drop_pts": drop(acc)}
            record["steps"].append(done | ({"embedding_tables": table_precision} if tables else {}))
            if acc > best["accuracy"]:
                best = {
                    "accuracy": acc,
                    "groups": list(excluded),
                    "tables": table_precision,
                    "folder": folder,
                }
            if drop(acc) <= cfg.max_accuracy_drop:
                break
        if best["folder"] != out_dir:
            _replace_folder(best["folder"], out_dir)
        record["excluded_groups"] = best["groups"]
        record["excluded_nodes"] = sorted(n for g in best["groups"] for n in groups[g])
    if tables:
        record["embedding_tables"] = {"first": first_tables, "chosen": best["tables"]}
    record["validation_accuracy"] = best["accuracy"]
    record["drop_pts"] = drop(best["accuracy"])
    record["within_tolerance"] = record["drop_pts"] <= cfg.max_accuracy_drop
    return ArtifactChecks(accuracy_guard=record)
