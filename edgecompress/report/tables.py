"""Report rows (one per variant) and their Markdown/CSV/JSON forms."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edgecompress.pareto import against

HEADLINE = {"batch_size": 1, "threads": 1}  # the mobile-class profile: batch 1, one thread


def _latency_key(row: dict) -> str:
    return f"b{row['batch_size']}_t{row['threads']}"


def _checks(res: dict) -> dict:
    """The quantizers' own checks as flat columns; ``flagged`` = over its accuracy budget."""
    out: dict = {}
    guard = res.get("accuracy_guard")
    if guard:
        out["guard_drop_pts"] = guard["drop_pts"]
        out["guard_max_drop_pts"] = guard["max_accuracy_drop"]
        out["guard_excluded_groups"] = " ".join(guard["excluded_groups"])
        out["guard_excluded_nodes"] = len(guard["excluded_nodes"])
        if guard.get("embedding_tables"):
            out["guard_embedding_tables"] = guard["embedding_tables"]["chosen"]
    inc = res.get("inc_vs_onnx")
    if inc:
        out["inc_onnx_agreement"] = inc["argmax_agreement"]
        out["inc_onnx_max_abs_logit_diff"] = inc["max_abs_logit_diff"]
    tune = res.get("autotune")
    if tune:
        out["autotune_trials"] = len(tune["trials"])
        out["autotune_chosen"] = tune["chosen"]
    over_budget = guard is not None and not guard["within_tolerance"]
    missed_goal = tune is not None and not tune["met_goal"]
    out["flagged"] = over_budget or missed_goal
    if over_budget:
        out["check"] = f"over tolerance ({guard['drop_pts']:.2f} > {guard['max_accuracy_drop']:g} pts)"
    elif missed_goal:
        out["check"] = "autotune goal missed"
    elif guard or inc or tune:
        out["check"] = "ok"
    return out


def _mobile(name: str, benchmark: dict, ort: dict | None) -> dict:
    out: dict = {}
    profile = benchmark.get("mobile")
    if profile:
        for lat in profile["latency"]:
            if lat["variant"] == name:
                out[f"mobile_p50_ms_L{lat['sequence_length']}"] = lat["p50_ms"]
        memory = profile["memory"].get(name)
        if memory:
            out["peak_rss_mb"] = memory["peak_mb"]
            out["model_rss_mb"] = memory["model_mb"]
    if ort:
        out["ort_size_mb"] = ort["ort_size_mb"]
        out["ort_runs"] = ort["loads_and_runs"] and ort["vs_onnx"]["argmax_agreement"] == 1.0
        out["ort_peak_rss_mb"] = ort["peak_rss"]["peak_mb"]
        out["mobile_eps"] = ", ".join(
            f"{ep}: {v.get('as_is', '?')}" for ep, v in ort["usability"]["execution_providers"].items()
        )
    return out


def build_rows(benchmark: dict, baseline: str, mobile: dict[str, dict] | None = None) -> list[dict]:
    """Rows for every variant with ratios against ``baseline`` (the teacher fp32).

    ``mobile`` maps variants converted to .ort to their mobile stage records.
    """
    by_variant: dict[str, dict] = {}
    for lat in benchmark["latency"]:
        by_variant.setdefault(lat["variant"], {})[_latency_key(lat)] = lat
    head = _latency_key(HEADLINE)
    rows = []
    for name, res in benchmark["variants"].items():
        lat = by_variant[name]
        row = {
            "variant": name,
            "artifact": res["artifact"],
            "precision": res.get("precision"),
            "size_mb": res["size_mb"],
            "params": res["params"],
            "accuracy": res["accuracy"],
            "f1_macro": res["f1_macro"],
            "test_samples": res.get("test_samples"),
            "validation_accuracy": res.get("validation_accuracy"),
            "validation_f1_macro": res.get("validation_f1_macro"),
            "latency_ms_p50": lat[head]["p50_ms"],
            "latency_ms_p90": lat[head]["p90_ms"],
            "latency_ms_p99": lat[head]["p99_ms"],
        }
        for key, value in lat.items():
            if key != head:
                row[f"latency_ms_p50_{key}"] = value["p50_ms"]
            row[f"throughput_per_s_{key}"] = value["throughput_per_s"]
        row.update(_checks(res))
        row.update(_mobile(name, benchmark, (mobile or {}).get(name)))
        rows.append(row)
    base = next((r for r in rows if r["variant"] == baseline), rows[0])
    for row in rows:
        row.update(against(base, row))
    return rows


def markdown_table(rows: list[dict], baseline: str) -> str:
    cols = [
        ("variant", "variant", "{}"),
        ("size_mb", "size MB", "{:.1f}"),
        ("x_smaller", "x smaller", "{:.1f}"),
        ("params", "params (M)", None),
        ("accuracy", "accuracy", "{:.4f}"),
        ("accuracy_delta_pts", "Δacc (pts)", "{:+.2f}"),
        ("f1_macro", "macro-F1", "{:.4f}"),
        ("validation_accuracy", "validation accuracy", "{:.4f}"),
        ("latency_ms_p50", "p50 ms (b1, 1 thr)", "{:.2f}"),
        ("latency_ms_p90", "p90 ms", "{:.2f}"),
        ("x_faster", "x faster", "{:.1f}"),
    ]
    if any("check" in r for r in rows):
        cols.append(("check", "accuracy check", "{}"))
    extra = sorted({k for r in rows for k in r if k.startswith("latency_ms_p50_b")})
    cols += [
        (
            k,
            "p50 ms " + k.removeprefix("latency_ms_p50_").replace("_t", ", thr ").replace("b", "b", 1),
            "{:.2f}",
        )
        for k in extra
    ]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            if key == "params":
                cells.append(f"{v / 1e6:.2f}" if v else "")
            elif v is None:
                cells.append("")
            else:
                cells.append(fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Ratios and Δacc are against `{baseline}`. Accuracy and macro-F1: the test split; validation accuracy "
        "is what variants are chosen on. Latency: ONNX Runtime on CPU, median of timed runs."
    )
    return "\n".join(lines)


def pick_best(rows: list[dict], baseline: str, max_accuracy_drop: float = 1.0) -> dict:
    """Fastest (batch 1, 1 thread) and smallest variants by one rule for every variant: not flagged by its own
    quantizer check, and validation accuracy at most ``max_accuracy_drop`` points below ``baseline``'s (the
    teacher's). Chosen on validation figures: test figures never decide.

    Returns the picks (absent when no variant qualifies), the rule in words, and every variant it excluded
    with the reason.
    """
    base = next((r for r in rows if r["variant"] == baseline), {})
    floor_acc = base.get("validation_accuracy")
    excluded: dict[str, str] = {}
    for r in rows:
        name, acc = r["variant"], r.get("validation_accuracy")
        if name == baseline:
            continue
        if r.get("flagged"):
            excluded[name] = f"its own check: {r['check']}"
        elif acc is None or floor_acc is None:
            excluded[name] = f"no validation accuracy measured for {name if acc is None else baseline}"
        elif 100 * (floor_acc - acc) > max_accuracy_drop + 1e-9:
            excluded[name] = (
                f"validation accuracy {acc:.4f}, {100 * (floor_acc - acc):.2f} pts below {baseline} "
                f"(> {max_accuracy_drop:g})"
            )
    reference = f" ({floor_acc:.4f})" if floor_acc is not None else ""
    best: dict = {
        "rule": f"not flagged by its own quantizer check, and validation accuracy at most "
        f"{max_accuracy_drop:g} points below {baseline}'s{reference} (report.max_accuracy_drop; chosen on "
        "validation, test figures never decide)",
        "max_accuracy_drop": max_accuracy_drop,
        "baseline": baseline,
        "baseline_validation_accuracy": floor_acc,
        "excluded": excluded,
        "flagged": [r["variant"] for r in rows if r.get("flagged")],
    }
    candidates = [r for r in rows if r["variant"] != baseline and r["variant"] not in excluded]
    if candidates:
        best["fastest"] = min(candidates, key=lambda r: r["latency_ms_p50"])["variant"]
        best["smallest"] = min(candidates, key=lambda r: r["size_mb"])["variant"]
    return best


def mobile_table(rows: list[dict]) -> str:
    """The mobile-class profile: batch 1, 1 thread per length; peak RSS; the .ort file where converted."""
    lengths = sorted(
        {int(k.removeprefix("mobile_p50_ms_L")) for r in rows for k in r if k.startswith("mobile_p50_ms_L")}
    )
    has_ort = any("ort_size_mb" in r for r in rows)
    if not lengths and not has_ort:
        return ""
    head = ["variant", *[f"p50 ms, {n} tokens" for n in lengths], "peak RSS MB", "of which model MB"]
    if has_ort:
        head += [".ort MB", ".ort loads and runs", ".ort peak RSS MB", "NNAPI / CoreML (usability checker)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]

    def cell(v, fmt="{:.2f}"):
        return "" if v is None else fmt.format(v)

    for r in rows:
        cells = [r["variant"], *[cell(r.get(f"mobile_p50_ms_L{n}")) for n in lengths]]
        cells += [cell(r.get("peak_rss_mb"), "{:.1f}"), cell(r.get("model_rss_mb"), "{:.1f}")]
        if has_ort:
            runs = r.get("ort_runs")
            cells += [
                cell(r.get("ort_size_mb"), "{:.1f}"),
                "" if runs is None else ("yes" if runs else "NO"),
                cell(r.get("ort_peak_rss_mb"), "{:.1f}"),
                r.get("mobile_eps", ""),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str))
