"""Report stage: report.md, results.csv, report.json and PNG plots in the run folder (always rewritten)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress.benchmark.stage import RESULTS_FILE
from edgecompress.context import StageContext, resolve_in_run
from edgecompress.export.artifact import add_metrics
from edgecompress.machine import machine_line
from edgecompress.prune.stage import IMPORTANCE_FILE, PruneRecord
from edgecompress.report import plots
from edgecompress.report.config import ReportConfig
from edgecompress.report.tables import (
    build_rows,
    markdown_table,
    mobile_table,
    pick_best,
    write_csv,
    write_json,
)


@dataclass(frozen=True)
class ReportInputs:
    benchmark_dir: Path  # the benchmark stage's folder (benchmark.json)
    baseline: str  # the variant ratios are taken against (the teacher fp32)
    stages: list[dict]  # {name, reused, seconds} per stage of this run
    prune: PruneRecord | None = None  # the prune stage's record, when the run prunes
    prune_dir: Path | None = None  # its folder (importance.json for the heat map)
    mobile: dict[str, dict] = field(default_factory=dict)  # variant -> its mobile (.ort) stage record
    data: dict | None = None  # the data stage's record (split sizes, what was dropped)


_METRICS = (
    "accuracy",
    "f1_macro",
    "validation_accuracy",
    "size_mb",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
)
_EXTRA_METRICS = ("check", "flagged", "peak_rss_mb", "ort_size_mb", "ort_runs")


_TABLES = {"int4": "int4 blocks", "int8": "int8 blocks", "fp32": "float", "per_tensor": "Optimum's int8"}


def choice_lines(best: dict) -> list[str]:
    """Which variants are fastest and smallest, the one rule that picked them, and what it left out and why."""
    if best.get("fastest"):
        md = [f"Fastest at batch 1, 1 thread: `{best['fastest']}`; smallest: `{best['smallest']}`."]
    else:
        md = ["No variant meets the rule for fastest and smallest."]
    md += [f"Rule, the same for every variant: {best['rule']}.", ""]
    if best["excluded"]:
        md += [
            "Excluded, never picked above: "
            + "; ".join(f"`{v}` ({why})" for v, why in best["excluded"].items())
            + ".",
            "",
        ]
    return md


def guard_lines(guard: dict) -> list[str]:
    """The int8 accuracy guard's verdict, what it kept in float, the embedding tables' precision, and its
    measurements."""
    verdict = "within" if guard["within_tolerance"] else "**over**"
    tables = guard.get("embedding_tables")
    if tables:
        first, chosen = _TABLES[tables["first"]], _TABLES[tables["chosen"]]
        tables_text = (
            f"; embedding tables: {first} -> {chosen}" if chosen != first else f"; embedding tables: {first}"
        )
    else:
        tables_text = ""
    md = [
        f"- Accuracy guard: validation accuracy {guard['validation_accuracy']:.4f} vs fp32 "
        f"{guard['fp32_validation_accuracy']:.4f} ({guard['drop_pts']:+.2f} pts lost, {verdict} the "
        f"{guard['max_accuracy_drop']:g}-point budget); kept in float: "
        f"{', '.join(guard['excluded_groups']) or 'nothing'} ({len(guard['excluded_nodes'])} nodes){tables_text}."
    ]
    if guard["sensitivity"]:
        ranked = sorted(guard["sensitivity"].items(), key=lambda kv: kv[1])
        rungs = (
            " embeddings:int8 / embeddings:fp32 = the embedding tables as int8 blocks / float;"
            if tables
            else ""
        )
        md.append(
            "- Measured sensitivity (logit MSE vs fp32 with the group kept in float;"
            + rungs
            + " lower = that step matters more): "
            + ", ".join(f"{g} {v:.3g}" for g, v in ranked)
            + "."
        )
    return md


def checks_section(benchmark: dict) -> list[str]:
    """What each quantizer checked: the int8 accuracy guard, INC -> ONNX agreement, autotune trials."""
    md: list[str] = []
    for name, res in benchmark["variants"].items():
        guard, inc, tune = res.get("accuracy_guard"), res.get("inc_vs_onnx"), res.get("autotune")
        if not (guard or inc or tune):
            continue
        md += [f"### {name}", ""]
        if guard:
            md += guard_lines(guard)
        if inc:
            md.append(
                f"- INC PyTorch model vs this ONNX artifact on {inc['samples']} validation examples: argmax "
                f"agreement {inc['argmax_agreement']:.4f}, max |delta logit| {inc['max_abs_logit_diff']:.2e}."
            )
        if tune:
            md += [
                f"- INC autotune (tolerable relative loss {tune['tolerable_loss']:g}, fp32 validation accuracy "
                f"{tune['baseline_accuracy']:.4f}): trial {tune['chosen']} chosen"
                f"{'' if tune['met_goal'] else ' (no trial met the goal: best kept)'}.",
                "",
                "| trial | algorithm | group size | kept in float | validation accuracy | relative loss | meets goal | "
                "as configured |",
                "|---|---|---|---|---|---|---|---|",
                *[
                    f"| {t['trial']}{' (chosen)' if t['trial'] == tune['chosen'] else ''} | {t['algorithm']} | "
                    f"{t['group_size']} | {' '.join(t['keep_fp32']) or '-'} | {t['accuracy']:.4f} | "
                    f"{t['relative_loss']:+.4f} | {'yes' if t['meets_goal'] else 'no'} | {_as_configured(t)} |"
                    for t in tune["trials"]
                ],
            ]
        md.append("")
    return md


def _as_configured(trial: dict) -> str:
    if trial.get("as_configured", True):
        return "yes"
    return (
        f"no: INC quantized {trial['quantized_layers']} layers (asked {trial['expected_quantized_layers']}), "
        f"group sizes {trial['built_group_sizes']}"
    )


def _optional_sections(benchmark: dict, rows: list[dict], best: dict) -> list[str]:
    md = ["## Accuracy checks", "", *choice_lines(best), *checks_section(benchmark)]
    mobile = mobile_table(rows)
    if mobile:
        profile = benchmark.get("mobile") or {}
        md += [
            "## Mobile-class profile",
            "",
            "ONNX Runtime on CPU, 1 thread, batch 1"
            + (
                f", a short ({profile['short_length']} tokens) and a typical ({profile['typical_length']} tokens, "
                "the median validation length) input"
                if profile
                else ""
            )
            + ". Peak RSS: a fresh process that loads the model and runs one typical input; 'of which model' "
            "is the rise over the process after importing onnxruntime. `.ort`: ONNX Runtime's mobile format, "
            "converted and checked with ONNX Runtime's own tools; its peak RSS is for one input of "
            "data.max_length tokens.",
            "",
            mobile,
            "",
        ]
    return md


def data_line(rec: dict) -> str:
    """Split sizes and every drop the data stage made, in one line."""
    sizes = ", ".join(f"{split} {s['examples']}" for split, s in rec["splits"].items())
    d = rec.get("dropped") or {}
    drops = [
        f"{d['empty']} empty" if d.get("empty") else "",
        f"{d['duplicates']} duplicates" if d.get("duplicates") else "",
        f"{d['conflicting_rows']} rows of {d['conflicting_texts']} texts with conflicting labels"
        if d.get("conflicting_rows")
        else "",
        *[
            f"{n} {split} rows also in a later split"
            for split, n in (d.get("across_splits") or {}).items()
            if n
        ],
    ]
    redecoded = (d.get("redecoded_files") or {}).get("count")
    text = f"Data: {sizes} examples; dropped: {', '.join(x for x in drops if x) or 'nothing'}."
    return text + (f" {redecoded} files decoded with data.fallback_encoding." if redecoded else "")


def pruning_section(rec: PruneRecord) -> list[str]:
    """Per-layer table of heads and feed-forward units kept, and the vocabulary change."""
    params = f"parameters {rec['params_before'] / 1e6:.2f}M -> {rec['params_after'] / 1e6:.2f}M."
    lines = ["## Pruning", ""]
    if "heads_before" in rec:
        lines.append(
            f"Heads {rec['heads_before']} -> {rec['heads_after']} ({100 * rec['removed_head_share']:.0f}% "
            f"removed), FFN units {rec['units_before']} -> {rec['units_after']} "
            f"({100 * rec['removed_unit_share']:.0f}% removed), {params}"
        )
    else:  # a BiLSTM / TextCNN student: its vocabulary only
        lines.append(params[0].upper() + params[1:])
    if (rec.get("vocab") or {}).get("kept_full"):
        lines.append(
            f"Vocabulary kept whole ({rec['vocab']['before']} word-pieces): {rec['vocab']['kept_full']}."
        )
    elif rec.get("vocab"):
        v = rec["vocab"]
        lines.append(
            f"Vocabulary {v['before']} -> {v['after']} word-pieces (seen >= {v['min_frequency']}x in train, "
            "plus specials and single characters)."
        )
    emb = rec.get("embeddings") or {}
    if emb.get("rank"):
        lines.append(
            f"Word table factorised to {emb['table'][0]} x {emb['rank']} + {emb['rank']} x {emb['projection'][1]} "
            f"(rank {emb['rank']}, {100 * emb['svd_energy_kept']:.1f}% of the SVD energy before recovery)."
        )
    if emb.get("positions_before"):
        lines.append(
            f"Position table {emb['positions_before']} -> {emb['positions']} rows (data.max_length)."
        )
    if rec.get("validation"):
        lines.append(f"Validation accuracy after recovery: {rec['validation']['accuracy']:.4f}.")
    if "layers" not in rec:
        return lines + [""]
    lines += ["", "| layer | heads kept | head ids kept | FFN units kept |", "|---|---|---|---|"]
    for layer in rec["layers"]:
        lines.append(
            f"| {layer['layer']} | {layer['heads_kept']}/{layer['heads_total']} | {', '.join(map(str, layer['head_ids']))} | "
            f"{layer['units_kept']}/{layer['units_total']} |"
        )
    for layer in rec.get("dropped_layers", []):
        lines.append(f"| {layer} | dropped | | |")
    return lines + [""]


def run(cfg: ReportConfig, inputs: ReportInputs, ctx: StageContext, out_dir: Path) -> dict:
    """Writes report.md, results.csv, report.json and the plots into ``out_dir`` (the run folder)."""
    run_dir, baseline, mobile = out_dir, inputs.baseline, inputs.mobile
    recipe, stages = ctx.recipe, inputs.stages
    benchmark = json.loads((inputs.benchmark_dir / RESULTS_FILE).read_text())
    rows = build_rows(benchmark, baseline, mobile)
    for row in rows:  # record the figures in each deployable artifact too
        add_metrics(
            resolve_in_run(row["artifact"], run_dir),
            {k: row[k] for k in _METRICS + _EXTRA_METRICS if k in row},
        )
    table = markdown_table(rows, baseline)
    best = pick_best(rows, baseline, cfg.max_accuracy_drop)
    machine = benchmark["machine"]
    pictures = []
    if cfg.plots:
        plots.accuracy_vs_latency(rows, run_dir / "accuracy_vs_latency.png")
        plots.size_per_variant(rows, run_dir / "size_per_variant.png")
        pictures = ["accuracy_vs_latency.png", "size_per_variant.png"]
    prune_lines = []
    if inputs.prune is not None:
        prune_lines = pruning_section(inputs.prune)
        if cfg.plots and (inputs.prune_dir / IMPORTANCE_FILE).is_file():  # transformers: head scores
            plots.head_importance_heatmap(
                json.loads((inputs.prune_dir / IMPORTANCE_FILE).read_text()), run_dir / "head_importance.png"
            )
            prune_lines.append("![head importance](head_importance.png)\n")
    stage_lines = [
        f"| {s['name']} | {'reused' if s['reused'] else 'ran'} | {s['seconds']:.1f} | {s.get('train_precision') or ''} |"
        for s in stages
    ]
    md = [
        f"# edgecompress report: {recipe['name']}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}. Machine: {machine_line(machine)}.",
        f"Test split: {rows[0].get('test_samples', '')} examples. Sequence length {benchmark['latency'][0]['sequence_length']}.",
        *([data_line(inputs.data)] if inputs.data else []),
        *([f"Operating point: {cfg.operating_point}"] if cfg.operating_point else []),
        "",
        table,
        "",
        *[f"![{p}]({p})" for p in pictures],
        "",
        *prune_lines,
        *_optional_sections(benchmark, rows, best),
        "",
        "## Stages",
        "",
        "| stage | this run | seconds (when it ran) | training precision |",
        "|---|---|---|---|",
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
        "best": best,
        "mobile": {"profile": benchmark.get("mobile"), "ort": mobile or {}},
    }
    write_json(report, run_dir / "report.json")
    return {"rows": rows, "table": table}
