"""Report rows (one per variant) and their Markdown/CSV/JSON forms."""

from __future__ import annotations

import csv
import json
from pathlib import Path

HEADLINE = {"batch_size": 1, "threads": 1}  # the mobile-class profile: batch 1, one thread


def _latency_key(row: dict) -> str:
    return f"b{row['batch_size']}_t{row['threads']}"


def build_rows(benchmark: dict, baseline: str) -> list[dict]:
    """Rows for every variant with ratios against ``baseline`` (the teacher fp32)."""
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
            "latency_ms_p50": lat[head]["p50_ms"],
            "latency_ms_p90": lat[head]["p90_ms"],
            "latency_ms_p99": lat[head]["p99_ms"],
        }
        for key, value in lat.items():
            if key != head:
                row[f"latency_ms_p50_{key}"] = value["p50_ms"]
            row[f"throughput_per_s_{key}"] = value["throughput_per_s"]
        rows.append(row)
    base = next((r for r in rows if r["variant"] == baseline), rows[0])
    for row in rows:
        row["x_smaller"] = base["size_mb"] / row["size_mb"]
        row["x_faster"] = base["latency_ms_p50"] / row["latency_ms_p50"]
        row["accuracy_delta_pts"] = 100 * (row["accuracy"] - base["accuracy"])
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
        ("latency_ms_p50", "p50 ms (b1, 1 thr)", "{:.2f}"),
        ("latency_ms_p90", "p90 ms", "{:.2f}"),
        ("x_faster", "x faster", "{:.1f}"),
    ]
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
        f"Ratios and Δacc are against `{baseline}`. Latency: ONNX Runtime on CPU, median of timed runs."
    )
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str))
