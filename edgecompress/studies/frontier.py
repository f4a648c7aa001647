"""The size / latency / accuracy frontier of a run: its variants, the sparsity sweep's points and the peers,
measured in one interleaved run, with the Pareto-optimal points marked; and the final artifact over several
training seeds, so that "within 1 point of the teacher" is a measured claim (benchmarks/frontier.py).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from edgecompress.errors import EdgeCompressError
from edgecompress.pareto import against, pareto_front


@dataclass(frozen=True)
class Point:
    variant: str
    kind: str  # run | sweep | peer
    folder: Path
    stale: str | None = None  # the first stage of its chain the recipe and code would build otherwise now


def result_rows(path: Path, fields: tuple[str, ...]) -> list[dict]:
    """The ``rows`` of a sweep.json / peers.json, each with ``fields``; anything else is a one-line error."""
    try:
        rows = json.loads(path.read_text())["rows"]
        missing = next(((i, f) for i, r in enumerate(rows) for f in fields if f not in r), None)
    except (ValueError, KeyError, TypeError):
        raise EdgeCompressError(
            "not a results file (a JSON object with a 'rows' list)", where=str(path)
        ) from None
    if missing is not None:
        raise EdgeCompressError(f"row {missing[0]} has no '{missing[1]}'", where=str(path))
    return rows


def rebuilt(pipe, build) -> tuple[Path | None, str | None]:
    """``(folder, None)`` when ``build(pipe)`` finds every stage it needs finished with the key the recipe and
    code give it now (``pipe`` only reuses stages: nothing is trained here); else ``(None, why)``."""
    from edgecompress.pipeline import StaleStage

    try:
        return build(pipe), None
    except StaleStage as exc:
        return None, f"{exc.where} differs"
    except EdgeCompressError as exc:  # e.g. the recipe no longer builds such a variant
        return None, exc.message


def _point(row: dict, kind: str, folder: Path | None, why: str | None, run_dir: Path) -> Point:
    if why is None and folder.name != row["variant"]:
        why = f"the recipe builds it as {folder.name}"
    return Point(row["variant"], kind, run_dir / "models" / row["variant"], why)


def sweep_points(pipe) -> list[Point]:
    """The sparsity sweep's points (<run>/sweep/sweep.json), each checked against what the recipe builds now."""
    from edgecompress.studies.sweep import SweepPoint, build_point, final_variant_config

    path = pipe.run_dir / "sweep" / "sweep.json"
    if not path.is_file():
        return []
    points = []
    for row in result_rows(path, ("variant", "layers", "fraction")):
        point = SweepPoint(row["layers"], row["fraction"])
        variant = row["variant"].removeprefix(f"sweep-{point.name}-")

        def build(p, point=point, variant=variant):
            return build_point(p, point, final_variant_config(p, variant))["quantized"]

        points.append(_point(row, "sweep", *rebuilt(pipe, build), pipe.run_dir))
    return points


def peer_points(pipe) -> list[Point]:
    """Peers (1)-(3) of <run>/peers/peers.json, each checked against what the recipe builds now; (4) is one
    of the run's own variants."""
    from edgecompress.studies.peers import PEERS, peer_model

    path = pipe.run_dir / "peers" / "peers.json"
    if not path.is_file():
        return []
    points = []
    for row in result_rows(path, ("peer", "variant")):
        if row["peer"] == "4":
            continue
        if row["peer"] not in PEERS:
            raise EdgeCompressError(f"unknown peer '{row['peer']}'", where=str(path))
        found = rebuilt(pipe, lambda p, label=row["peer"]: peer_model(p, label))
        points.append(_point(row, "peer", *found, pipe.run_dir))
    return points


def current_points(points: list[Point], allow_stale: bool) -> list[Point]:
    """``points``, refused in one line when some were built from another recipe or code than the run's
    (``allow_stale``: kept, their kind marked stale)."""
    stale = [p for p in points if p.stale]
    if stale and not allow_stale:
        named = "; ".join(f"{p.variant} ({p.stale})" for p in stale)
        raise EdgeCompressError(
            f"{len(stale)} points were built from another recipe or code than this run: {named}; rebuild them "
            "(benchmarks/sparsity_curve.py, benchmarks/peers.py), or pass --allow-stale to measure them anyway",
            where="frontier",
        )
    return [replace(p, kind=f"{p.kind} (stale)") if p.stale else p for p in points]


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
        r.update(against(base, r))
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
    split_seed = recipe.seed if recipe.data.split_seed is None else recipe.data.split_seed  # 0 is a seed
    data = recipe.data.model_copy(update={"split_seed": split_seed})
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
