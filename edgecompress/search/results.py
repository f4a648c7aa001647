"""What a search leaves in ``<run>/search/``: every trial (trials.csv, trials.json), the Pareto plot on
validation, and for the chosen point ``chosen.yaml`` (the recipe that builds it) and ``chosen.json``. The test
split is read here, after the choice, for the chosen point and the validation-Pareto points only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edgecompress.pareto import pareto_front
from edgecompress.search.config import SearchConfig

COLUMNS = (
    "trial",
    "state",
    "point",
    "validation_accuracy",
    "validation_drop_pts",
    "validation_drop_low",
    "validation_drop_high",
    "within_budget",
    "latency_ms_p50",
    "teacher_latency_ms_p50",
    "x_faster",
    "size_mb",
    "pareto",
    "chosen",
    "test_accuracy",
    "test_drop_pts",
    "seconds",
    "note",
)


def trial_rows(study, cfg: SearchConfig) -> list[dict]:
    """One row per trial that ended (finished, stopped early or failed), in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name in ("RUNNING", "WAITING"):
            continue
        a = t.user_attrs
        row = {"trial": t.number, "state": t.state.name, "point": a.get("point"), "params": {**t.params}}
        row.update({k: a[k] for k in a if k not in ("worker", "constraint")})
        if t.state.name == "COMPLETE":
            row["within_budget"] = a["validation_drop_pts"] <= cfg.max_drop
            row["x_faster"] = 1 / a["latency_ratio"]
            row["objective"] = t.value
        elif t.state.name == "PRUNED":
            at = a.get("pruned_at", {})
            row["within_budget"] = False
            row["note"] = (
                f"stopped after recovery round {at.get('step')}: {at.get('validation_drop_pts', 0):.2f} points down"
            )
        else:
            row["within_budget"] = False
            row["note"] = a.get("error", "failed")
        rows.append(row)
    return rows


def choose(rows: list[dict]) -> dict | None:
    """The finished trial within the budget with the best objective; ties go to the higher validation accuracy,
    then the earlier trial. Validation figures only."""
    feasible = [r for r in rows if r["state"] == "COMPLETE" and r["within_budget"]]
    if not feasible:
        return None
    return min(feasible, key=lambda r: (round(r["objective"], 9), -r["validation_accuracy"], r["trial"]))


def mark_pareto(rows: list[dict], objective: str) -> list[dict]:
    """Validation-Pareto trials: no other finished trial has both a better objective and a higher validation
    accuracy."""
    x = "latency_ratio" if objective == "latency" else "size_mb"
    done = [r for r in rows if r["state"] == "COMPLETE"]
    front = {r["trial"] for r in pareto_front(done, x=x, y="validation_accuracy")}
    for r in rows:
        r["pareto"] = r["trial"] in front
    return [r for r in rows if r["pareto"]]


def write_tables(rows: list[dict], folder: Path, summary: dict) -> None:
    with open(folder / "trials.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in COLUMNS}
            )
    (folder / "trials.json").write_text(json.dumps({**summary, "trials": rows}, indent=1, default=str))


def markdown(rows: list[dict], summary: dict) -> str:
    lines = [
        f"# edgecompress search: {summary['name']}",
        "",
        f"Objective: {summary['objective']} within {summary['max_drop']:g} validation points of the teacher "
        f"(validation accuracy {summary['teacher_validation_accuracy']:.4f}); {summary['trials']} trials, "
        f"sampler {summary['sampler']}, pruner {summary['pruner']}. Chosen on validation; test figures were read "
        "after the choice, for the chosen and the validation-Pareto points only.",
        "",
        "| trial | point | state | val acc | val drop (95% CI) | x faster | MB | Pareto | chosen | test acc | test drop |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["state"] != "COMPLETE":
            lines.append(
                f"| {r['trial']} | {r['point']} | {r['state'].lower()} | | {r.get('note', '')} | | | | | | |"
            )
            continue
        test = f"{r['test_accuracy']:.4f} | {r['test_drop_pts']:+.2f}" if "test_accuracy" in r else " | "
        lines.append(
            f"| {r['trial']} | {r['point']} | {'within' if r['within_budget'] else 'over'} | "
            f"{r['validation_accuracy']:.4f} | {r['validation_drop_pts']:.2f} ({r['validation_drop_low']:.2f}, "
            f"{r['validation_drop_high']:.2f}) | {r['x_faster']:.1f} | {r['size_mb']:.2f} | "
            f"{'yes' if r['pareto'] else ''} | {'**yes**' if r.get('chosen') else ''} | {test} |"
        )
    chosen = summary.get("chosen")
    lines += [
        "",
        f"Chosen: trial {chosen['trial']} `{chosen['point']}` -> `search/chosen.yaml`."
        if chosen
        else "No trial met the budget: nothing was chosen.",
    ]
    return "\n".join(lines) + "\n"


def pareto_plot(rows: list[dict], summary: dict, path: Path) -> None:
    """Validation accuracy vs latency (marker area ~ MB), the budget line and the chosen point."""
    from edgecompress.report.plots import _pyplot

    plt = _pyplot()
    done = [r for r in rows if r["state"] == "COMPLETE"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if done:
        ax.scatter(
            [r["latency_ms_p50"] for r in done],
            [100 * r["validation_accuracy"] for r in done],
            s=[max(12.0, 12.0 * r["size_mb"]) for r in done],
            c=["tab:green" if r["within_budget"] else "tab:gray" for r in done],
            alpha=0.6,
            label="trials (area ~ MB; green: within budget)",
        )
        front = sorted((r for r in done if r["pareto"]), key=lambda r: r["latency_ms_p50"])
        ax.plot(
            [r["latency_ms_p50"] for r in front],
            [100 * r["validation_accuracy"] for r in front],
            "k--",
            lw=0.8,
            label="validation Pareto front",
        )
        ax.scatter(
            [done[0]["teacher_latency_ms_p50"]],
            [100 * summary["teacher_validation_accuracy"]],
            marker="*",
            s=160,
            c="tab:blue",
            label="teacher fp32",
        )
    budget = 100 * summary["teacher_validation_accuracy"] - summary["max_drop"]
    ax.axhline(budget, color="tab:red", lw=0.8, label=f"budget: teacher - {summary['max_drop']:g} pts")
    chosen = summary.get("chosen")
    if chosen:
        r = next(r for r in done if r["trial"] == chosen["trial"])
        ax.scatter(
            [r["latency_ms_p50"]],
            [100 * r["validation_accuracy"]],
            marker="o",
            s=220,
            facecolors="none",
            edgecolors="tab:red",
            lw=2,
            label=f"chosen: trial {r['trial']}",
        )
    ax.set_xlabel("latency p50 (ms), batch 1, 1 thread")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{summary['name']}: search on validation ({summary['objective']})")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
