"""Report stage: report.md, results.csv, report.json and PNG plots in the run folder (always rewritten)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgecompress.benchmark.machine import machine_line
from edgecompress.export.artifact import add_metrics
from edgecompress.report import plots
from edgecompress.report.config import ReportConfig
from edgecompress.report.tables import build_rows, markdown_table, write_csv, write_json


def pruning_section(prune_dir: Path) -> list[str]:
    """Per-layer table of heads and feed-forward units kept, and the vocabulary change."""
    rec = json.loads((prune_dir / "stage.json").read_text())["record"]
    lines = [
        "## Pruning",
        "",
        f"Heads {rec['heads_before']} -> {rec['heads_after']} ({100 * rec['removed_head_share']:.0f}% removed), "
        f"FFN units {rec['units_before']} -> {rec['units_after']} ({100 * rec['removed_unit_share']:.0f}% removed), "
        f"parameters {rec['params_before'] / 1e6:.2f}M -> {rec['params_after'] / 1e6:.2f}M.",
    ]
    if rec.get("vocab"):
        v = rec["vocab"]
        lines.append(
            f"Vocabulary {v['before']} -> {v['after']} word-pieces (seen >= {v['min_frequency']}x in train, "
            "plus specials and single characters)."
        )
    if rec.get("validation"):
        lines.append(f"Validation accuracy after recovery: {rec['validation']['accuracy']:.4f}.")
    lines += ["", "| layer | heads kept | head ids kept | FFN units kept |", "|---|---|---|---|"]
    for layer in rec["layers"]:
        lines.append(
            f"| {layer['layer']} | {layer['heads_kept']}/{layer['heads_total']} | {', '.join(map(str, layer['head_ids']))} | "
            f"{layer['units_kept']}/{layer['units_total']} |"
        )
    for layer in rec.get("dropped_layers", []):
        lines.append(f"| {layer} | dropped | | |")
    return lines + [""]


def run(
    cfg: ReportConfig,
    benchmark_dir: Path,
    run_dir: Path,
    baseline: str,
    recipe: dict,
    stages: list[dict],
    prune_dir: Path | None = None,
) -> dict:
    benchmark = json.loads((benchmark_dir / "benchmark.json").read_text())
    rows = build_rows(benchmark, baseline)
    for row in rows:  # record the figures in each deployable artifact too
        add_metrics(
            Path(row["artifact"]),
            {
                k: row[k]
                for k in (
                    "accuracy",
                    "f1_macro",
                    "size_mb",
                    "latency_ms_p50",
                    "latency_ms_p90",
                    "latency_ms_p99",
                )
            },
        )
    table = markdown_table(rows, baseline)
    machine = benchmark["machine"]
    pictures = []
    if cfg.plots:
        plots.accuracy_vs_latency(rows, run_dir / "accuracy_vs_latency.png")
        plots.size_per_variant(rows, run_dir / "size_per_variant.png")
        pictures = ["accuracy_vs_latency.png", "size_per_variant.png"]
    prune_lines = []
    if prune_dir is not None:
        prune_lines = pruning_section(prune_dir)
        if cfg.plots:
            plots.head_importance_heatmap(
                json.loads((prune_dir / "importance.json").read_text()), run_dir / "head_importance.png"
            )
            prune_lines.append("![head importance](head_importance.png)\n")
    stage_lines = [
        f"| {s['name']} | {'reused' if s['reused'] else 'ran'} | {s['seconds']:.1f} |" for s in stages
    ]
    md = [
        f"# edgecompress report: {recipe['name']}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}. Machine: {machine_line(machine)}.",
        f"Test split: {rows[0].get('test_samples', '')} examples. Sequence length {benchmark['latency'][0]['sequence_length']}.",
        "",
        table,
        "",
        *[f"![{p}]({p})" for p in pictures],
        "",
        *prune_lines,
        "## Stages",
        "",
        "| stage | this run | seconds (when it ran) |",
        "|---|---|---|",
        *stage_lines,
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(md))
    write_csv(rows, run_dir / "results.csv")
    report = {
        "name": recipe["name"],
        "baseline": baseline,
        "machine": machine,
        "rows": rows,
        "latency": benchmark["latency"],
        "stages": stages,
    }
    write_json(report, run_dir / "report.json")
    return {"rows": rows, "table": table}
