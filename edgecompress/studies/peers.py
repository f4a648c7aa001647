"""What a user would ship instead, measured beside our final artifact in one interleaved run.

  (1) one-liner: the fine-tuned teacher exported with Optimum and quantized with ORTQuantizer dynamic int8
      (the recipe's int8_dynamic preset), no distillation;
  (2) labels only: the recipe's student trained on the hard labels, no teacher;
  (3) soft targets: the same student trained on hard labels + the teacher's soft targets (T^2 KL), without
      attention or hidden-state transfer;
  (4) ours: the run's final artifact (``pick_ours``).
(2) and (3) are exported and quantized exactly like (1), with the same int8 dynamic config as the recipe's
student, so rows (2)-(4) differ by training (and whatever (4) adds, e.g. pruning), not by precision.
Every peer is a cached stage of the recipe's run folder; only the measurement is redone on each call.
"""

from __future__ import annotations

from pathlib import Path

from edgecompress.errors import EdgeCompressError
from edgecompress.pareto import against
from edgecompress.quantize.config import Int8DynamicConfig

PEERS = {
    "1": "teacher + Optimum dynamic int8 (one-liner)",
    "2": "student, labels only",
    "3": "student, labels + soft targets",
    "4": "ours",
}
BASELINE = "1"


def peer_quant_config(recipe) -> Int8DynamicConfig:
    """The recipe's int8 dynamic variant (its preset and per-channel choice), else the default one."""
    found = [v for v in recipe.quantization.variants if isinstance(v, Int8DynamicConfig)]
    return found[0] if found else Int8DynamicConfig()


def pick_ours(report: dict, max_drop_pts: float) -> tuple[str, str]:
    """The final artifact from a run's report.json, by the report's own rule (``pick_best``), on validation
    figures only; returns (variant, why).

    Rule: among the variants not derived from the teacher and not flagged by their own quantizer check, those
    whose validation accuracy is at most ``max_drop_pts`` points below the teacher's; of these the fastest at
    batch 1, 1 thread. When none qualifies: the most accurate such variant on validation. Test accuracy never
    decides: it is what the benchmarks then report.
    """
    from edgecompress.report.tables import pick_best

    baseline = report.get("baseline", "teacher-fp32")
    rows = report.get("rows") or []
    teacher = next((r for r in rows if r["variant"] == baseline), None)
    candidates = [r for r in rows if not r["variant"].startswith("teacher")]
    if teacher is None or not candidates:
        raise EdgeCompressError(
            f"report.json has no {baseline} row or no student variant; run the recipe first or pass --ours",
            where="report.json",
        )
    if teacher.get("validation_accuracy") is None:
        raise EdgeCompressError(
            f"report.json has no validation accuracy for {baseline} (a report from before validation figures); "
            "run the recipe again or pass --ours",
            where="report.json",
        )
    best = pick_best([teacher, *candidates], baseline, max_drop_pts)
    if "fastest" in best:
        return best["fastest"], f"fastest at batch 1, 1 thread among the variants with {best['rule']}"
    measured = [r for r in candidates if r.get("validation_accuracy") is not None]
    if not measured:
        raise EdgeCompressError(
            "report.json has no validation accuracy for any student variant", where="report.json"
        )
    pick = max(measured, key=lambda r: r["validation_accuracy"])
    return pick["variant"], (
        f"no variant within {max_drop_pts:g} validation points of {baseline}: the most accurate one on validation"
    )


def finished_variant(run_dir: Path, variant: str) -> Path:
    folder = run_dir / "models" / variant
    if not (folder / "stage.json").is_file() or not (folder / "model.onnx").is_file():
        have = sorted(p.name for p in (run_dir / "models").glob("*") if (p / "stage.json").is_file())
        raise EdgeCompressError(
            f"no finished variant '{variant}' in {run_dir / 'models'} (finished: {', '.join(have) or 'none'})",
            where="--ours",
        )
    return folder


# the recipe fields peers (1)-(3) are trained from: ours must share them for a fair comparison
SHARED_FIELDS = ("seed", "data", "teacher", "student", "distill")


def stale_fields(built_with: dict, recipe: dict) -> list[str]:
    """Shared fields that differ between the recipe ours was built with (its manifest) and this one."""
    return [k for k in SHARED_FIELDS if built_with.get(k) != recipe.get(k)]


ABLATION_MODES = {"2": "labels", "3": "kd"}  # peers that are the recipe's student trained another way


def peer_model(pipe, label: str) -> Path:
    """Build (or reuse) peer ``label`` (1-3) as stages of ``pipe``'s run; returns its variant folder."""
    from edgecompress.pipeline import TEACHER_VARIANT
    from edgecompress.studies.ablation import ablation_student

    qcfg = peer_quant_config(pipe.recipe)
    if label == BASELINE:
        pipe.export(TEACHER_VARIANT, pipe.teacher())
        return pipe.quantize(TEACHER_VARIANT, qcfg)
    mode = ABLATION_MODES[label]
    fp32 = f"ablation-{mode}-fp32"
    pipe.export(fp32, ablation_student(pipe, mode))
    return pipe.quantize(fp32, qcfg)


def build_peers(pipe, ours: str) -> dict[str, tuple[str, Path]]:
    """Peer label -> (variant name, folder): builds (or reuses) peers 1-3 as stages of ``pipe``'s run."""
    ours_dir = finished_variant(pipe.run_dir, ours)
    peers = {label: peer_model(pipe, label) for label in (BASELINE, *ABLATION_MODES)}
    out = {label: (folder.name, folder) for label, folder in peers.items()}
    if ours_dir.name in {name for name, _ in out.values()}:
        raise EdgeCompressError(f"'{ours}' is one of the peers; pick the run's own artifact", where="--ours")
    out["4"] = (ours, ours_dir)
    return out


def _latency(benchmark: dict) -> dict[tuple[str, int, int], dict]:
    return {(r["variant"], r["batch_size"], r["threads"]): r for r in benchmark["latency"]}


def peer_rows(benchmark: dict, peers: dict[str, tuple[str, Path]]) -> list[dict]:
    """One row per peer with the measured figures and every ratio against peer (1)."""
    lat = _latency(benchmark)
    threads = sorted({r["threads"] for r in benchmark["latency"]})
    batches = sorted({r["batch_size"] for r in benchmark["latency"]})
    one, many, big = threads[0], threads[-1], batches[-1]
    rows = []
    for label, (variant, _) in peers.items():
        res = benchmark["variants"][variant]
        b1t1, b1tn = lat[variant, 1, one], lat[variant, 1, many]
        row = {
            "peer": label,
            "what": PEERS[label],
            "variant": variant,
            "precision": res.get("precision"),
            "size_mb": res["size_mb"],
            "params": res.get("params"),
            "accuracy": res["accuracy"],
            "f1_macro": res["f1_macro"],
            "test_samples": res.get("test_samples"),
            "p50_ms_b1_t1": b1t1["p50_ms"],
            "p90_ms_b1_t1": b1t1["p90_ms"],
            f"p50_ms_b1_t{many}": b1tn["p50_ms"],
            f"p90_ms_b1_t{many}": b1tn["p90_ms"],
            f"throughput_b{big}_t1": lat[variant, big, one]["throughput_per_s"],
            f"throughput_b{big}_t{many}": lat[variant, big, many]["throughput_per_s"],
        }
        rows.append(row)
    base = next(r for r in rows if r["peer"] == BASELINE)
    for row in rows:
        latency = [k for k in row if k.startswith(("p50_ms", "p90_ms"))]
        row.update(against(base, row, {f"x_faster_{k}": k for k in latency}))
        for key in [k for k in row if k.startswith("throughput_")]:
            row[f"x_{key}"] = row[key] / base[key]
        row["f1_delta_pts"] = 100 * (row["f1_macro"] - base["f1_macro"])
    return rows


def _settings(rows: list[dict]) -> tuple[int, int]:
    many = max(int(k.split("_t")[-1]) for k in rows[0] if k.startswith("p50_ms_b1_t"))
    big = max(int(k.split("_b")[1].split("_")[0]) for k in rows[0] if k.startswith("throughput_b"))
    return many, big


def peer_tables(rows: list[dict]) -> str:
    """Two Markdown tables: measured figures, then the same columns as ratios against peer (1)."""
    many, big = _settings(rows)
    head = [
        "| peer | variant | precision | size MB | accuracy | macro-F1 | p50 / p90 ms b1 1 thr | "
        f"p50 / p90 ms b1 {many} thr | items/s b{big} 1 thr | items/s b{big} {many} thr |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head.append(
            f"| ({r['peer']}) {r['what']} | `{r['variant']}` | {r['precision']} | {r['size_mb']:.1f} | "
            f"{r['accuracy']:.4f} | {r['f1_macro']:.4f} | {r['p50_ms_b1_t1']:.2f} / {r['p90_ms_b1_t1']:.2f} | "
            f"{r[f'p50_ms_b1_t{many}']:.2f} / {r[f'p90_ms_b1_t{many}']:.2f} | "
            f"{r[f'throughput_b{big}_t1']:.0f} | {r[f'throughput_b{big}_t{many}']:.0f} |"
        )
    ratio = [
        "",
        f"Against ({BASELINE}) (x > 1: smaller / faster / more throughput than ({BASELINE})):",
        "",
        "| peer | x smaller | x faster p50 b1 1 thr | x faster p90 b1 1 thr | "
        f"x faster p50 b1 {many} thr | x faster p90 b1 {many} thr | x items/s b{big} 1 thr | "
        f"x items/s b{big} {many} thr | Δaccuracy (pts) | Δmacro-F1 (pts) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio.append(
            f"| ({r['peer']}) {r['what']} | {r['x_smaller']:.2f} | {r['x_faster_p50_ms_b1_t1']:.2f} | "
            f"{r['x_faster_p90_ms_b1_t1']:.2f} | {r[f'x_faster_p50_ms_b1_t{many}']:.2f} | "
            f"{r[f'x_faster_p90_ms_b1_t{many}']:.2f} | {r[f'x_throughput_b{big}_t1']:.2f} | "
            f"{r[f'x_throughput_b{big}_t{many}']:.2f} | {r['accuracy_delta_pts']:+.2f} | "
            f"{r['f1_delta_pts']:+.2f} |"
        )
    return "\n".join(head + ratio)


TARGET_SPEED, TARGET_SIZE = 3.5, 5.0  # the frontier issue's bar for (4) against (1)


def target_check(rows: list[dict], speed: float = TARGET_SPEED, size: float = TARGET_SIZE) -> list[str]:
    """The bar for (4) against (1): ``speed``x faster (b1, 1 thread), ``size``x smaller, accuracy not lower."""
    ours = next(r for r in rows if r["peer"] == "4")
    n = ours.get("test_samples") or 0
    se = 100 * (ours["accuracy"] * (1 - ours["accuracy"]) / n) ** 0.5 if n else float("nan")
    marks = {True: "met", False: "NOT met"}
    return [
        f"- speed: {ours['x_faster_p50_ms_b1_t1']:.2f}x faster at batch 1, 1 thread (p50); "
        f"target {speed:g}x: {marks[ours['x_faster_p50_ms_b1_t1'] >= speed]}",
        f"- size: {ours['x_smaller']:.2f}x smaller; target {size:g}x: {marks[ours['x_smaller'] >= size]}",
        f"- accuracy: {ours['accuracy_delta_pts']:+.2f} points against (1) on {n} test examples "
        f"(one standard error is about {se:.1f} points); target >= 0: "
        f"{marks[ours['accuracy_delta_pts'] >= 0]}",
    ]
