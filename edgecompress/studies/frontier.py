"""The size / latency / accuracy frontier of a run: its variants, the sparsity sweep's points and the peers,
measured in one interleaved run, with the Pareto-optimal points marked; and the final artifact over several
training seeds, so that "within 1 point of the teacher" is a measured claim (benchmarks/frontier.py).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from edgecompress.errors import EdgeCompressError
from edgecompress.report.plots import pareto_front


@dataclass(frozen=True)
class Point:
    variant: str
    kind: str  # run | sweep | peer
    folder: Path


def sweep_points(run_dir: Path) -> list[Point]:
    path = run_dir / "sweep" / "sweep.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())["rows"]
    return [Point(r["variant"], "sweep", run_dir / "models" / r["variant"]) for r in rows]


def peer_points(run_dir: Path) -> list[Point]:
    path = run_dir / "peers" / "peers.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())["rows"]
    return [Point(r["variant"], "peer", run_dir / "models" / r["variant"]) for r in rows if r["peer"] != "4"]


def frontier_rows(benchmark: dict, points: list[Point], baseline: str) -> list[dict]:
    """One row per point with its figures, ratios against ``baseline`` and whether it is Pareto-optimal
    (no other point both faster and more accurate)."""
    latency = {(r["variant"], r["batch_size"], r["threads"]): r for r in benchmark["latency"]}
    rows = []
    for p in points:
        res = benchmark["variants"][p.variant]
        rows.append(
            {
                "variant": p.variant,
                "kind": p.kind,
                "size_mb": res["size_mb"],
                "params": res.get("params"),
                "accuracy": res["accuracy"],
                "f1_macro": res["f1_macro"],
                "latency_ms_p50": latency[p.variant, 1, 1]["p50_ms"],
            }
        )
    base = next(r for r in rows if r["variant"] == baseline)
    front = {r["variant"] for r in pareto_front(rows)}
    for r in rows:
        r["x_smaller"] = base["size_mb"] / r["size_mb"]
        r["x_faster"] = base["latency_ms_p50"] / r["latency_ms_p50"]
        r["accuracy_delta_pts"] = 100 * (r["accuracy"] - base["accuracy"])
        r["pareto"] = r["variant"] in front
    return rows


def frontier_table(rows: list[dict]) -> str:
    lines = [
        "| variant | from | MB | x smaller | params (M) | test acc | Δacc (pts) | macro-F1 | p50 ms b1 1 thr | "
        "x faster | Pareto |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["latency_ms_p50"]):
        params = f"{r['params'] / 1e6:.2f}" if r["params"] else ""
        lines.append(
            f"| {r['variant']} | {r['kind']} | {r['size_mb']:.2f} | {r['x_smaller']:.1f} | {params} | "
            f"{r['accuracy']:.4f} | {r['accuracy_delta_pts']:+.2f} | {r['f1_macro']:.4f} | "
            f"{r['latency_ms_p50']:.2f} | {r['x_faster']:.1f} | {'yes' if r['pareto'] else ''} |"
        )
    return "\n".join(lines)


def seed_recipe(recipe, seed: int, run_dir: Path):
    """The recipe trained from another seed over the same data split, in a run folder beside ``run_dir``."""
    data = recipe.data.model_copy(update={"split_seed": recipe.data.split_seed or recipe.seed})
    output = str(run_dir.parent / f"{run_dir.name}-seed{seed}")
    return recipe.model_copy(update={"seed": seed, "data": data, "output_dir": output})


def final_artifact(pipe, variant: str) -> Path:
    """Build only the chain ``variant`` needs (e.g. pruned-int8-dynamic: teacher, student, pruned, its fp32
    export and that quantization) in ``pipe``'s run folder; returns the variant's folder."""
    source, _, qname = variant.partition("-")
    models = {"student": pipe.student, "pruned": pipe.pruned}
    if source not in models or (source == "pruned" and pipe.recipe.prune is None):
        raise EdgeCompressError(
            f"'{variant}' is not a student or pruned variant of this recipe", where="--final"
        )
    pipe.export(f"{source}-fp32", models[source]())
    if qname == "fp32":
        return pipe.variants[variant]
    qcfg = next(
        (v for v in pipe.recipe.quantization.variants if v.name == qname and source in v.apply_to), None
    )
    if qcfg is None:
        raise EdgeCompressError(f"the recipe builds no variant '{variant}'", where="--final")
    return pipe.quantize(f"{source}-fp32", qcfg)


def spread(values: list[float]) -> dict:
    return {
        "values": values,
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }
