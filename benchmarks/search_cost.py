"""What an `edgecompress search` cost, and what its budget pruner saved.

    .venv/bin/python benchmarks/search_cost.py recipes/bert_to_tiny.yaml [--max-drop 1.0] [--objective latency]
        [--output DIR] [--storage URL] [--set a.b=v ...]

Reads the study that `edgecompress search` with the same recipe, overrides and flags ran (or is running) from
its storage (default `<run>/search/study.journal`): every trial's state, start and end (Optuna records both,
for stopped trials too), point and the recovery round it stopped at. Nothing is rebuilt or re-timed.

- wall time: first trial start to last trial end (the teacher and the students are built before the first
  trial, or were cached: their stages' own times are printed beside it from the run folder);
- per trial: seconds, state, where it stopped;
- saved by the pruner, an estimate: for each stopped trial, the median duration of the finished trials with
  the same student depth (all finished trials when none) minus what it ran.

Prints markdown (the section for benchmarks/RESULTS.md) and writes <run>/search/cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from edgecompress.quiet import quiet_third_party

quiet_third_party()

from edgecompress.errors import EdgeCompressError  # noqa: E402
from edgecompress.machine import machine_line  # noqa: E402
from edgecompress.recipe import load_recipe, parse_overrides  # noqa: E402
from edgecompress.search.config import SearchConfig  # noqa: E402
from edgecompress.search.run import study_name  # noqa: E402
from edgecompress.search.study import SEARCH_DIR, storage_for  # noqa: E402


def trial_costs(study) -> list[dict]:
    """One row per ended trial: number, state, point, student depth, seconds, and the round it stopped at."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name in ("RUNNING", "WAITING") or t.datetime_start is None or t.datetime_complete is None:
            continue
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "point": t.user_attrs.get("point", ""),
                "layers": t.params.get("layers"),
                "seconds": (t.datetime_complete - t.datetime_start).total_seconds(),
                "start": t.datetime_start.timestamp(),
                "end": t.datetime_complete.timestamp(),
                "stopped_at_round": (t.user_attrs.get("pruned_at") or {}).get("step"),
                "rounds_reported": len(t.intermediate_values),
            }
        )
    return rows


def savings(rows: list[dict]) -> dict:
    """The pruner's saving, estimated from the finished trials' durations (median, same depth when possible)."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    stopped = [r for r in rows if r["state"] == "PRUNED"]
    saved = 0.0
    for r in stopped:
        alike = [d["seconds"] for d in done if d["layers"] == r["layers"]] or [d["seconds"] for d in done]
        r["full_estimate_s"] = statistics.median(alike) if alike else None
        if r["full_estimate_s"] is not None:
            saved += max(0.0, r["full_estimate_s"] - r["seconds"])
    spent = sum(r["seconds"] for r in rows)
    return {
        "trials": len(rows),
        "finished": len(done),
        "stopped_early": len(stopped),
        "failed": sum(r["state"] == "FAIL" for r in rows),
        "seconds_in_trials": spent,
        "wall_s": (max(r["end"] for r in rows) - min(r["start"] for r in rows)) if rows else 0.0,
        "median_finished_s": statistics.median(d["seconds"] for d in done) if done else None,
        "saved_s_estimate": saved,
        "saved_share": saved / (spent + saved) if spent + saved else 0.0,
    }


def stage_seconds(run_dir: Path, names: tuple[str, ...] = ("teacher", "student")) -> dict[str, float]:
    """The shared stages' own build times, from their stage.json (absent when not built)."""
    out = {}
    for name in names:
        record = run_dir / name / "stage.json"
        if record.is_file():
            seconds = json.loads(record.read_text()).get("seconds")
            if seconds is not None:
                out[name] = float(seconds)
    return out


def markdown(name: str, rows: list[dict], total: dict, shared: dict[str, float]) -> str:
    lines = [
        f"Machine: {machine_line()}.",
        f"Study `{name}`: {total['trials']} trials ({total['finished']} finished, {total['stopped_early']} "
        f"stopped early by the budget pruner, {total['failed']} failed).",
        "",
        "| trial | point | state | seconds | stopped at round | full-trial estimate (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        estimate = r.get("full_estimate_s")
        lines.append(
            f"| {r['trial']} | `{r['point']}` | {r['state']} | {r['seconds']:.0f} | "
            f"{r['stopped_at_round'] if r['stopped_at_round'] is not None else ''} | "
            f"{'' if estimate is None else f'{estimate:.0f}'} |"
        )
    built = ", ".join(f"{k} {v:.0f} s" for k, v in shared.items()) or "not recorded"
    median = total["median_finished_s"]
    lines += [
        "",
        f"Search wall time (first trial start to last trial end): {total['wall_s'] / 60:.1f} min; "
        f"{total['seconds_in_trials'] / 60:.1f} min inside trials; a finished trial "
        f"{'n/a' if median is None else f'{median:.0f} s'} (median). Shared stages, built once before the "
        f"trials (or cached): {built}.",
        f"Saved by the pruner (estimate: each stopped trial at the median finished trial's duration): "
        f"{total['saved_s_estimate'] / 60:.1f} min, {100 * total['saved_share']:.0f}% of what the trials "
        "would have cost run to the end.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument("--max-drop", type=float, default=None, help="as given to edgecompress search")
    parser.add_argument("--objective", default=None, help="as given to edgecompress search")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    parser.add_argument("--storage", default=None, help="the study's storage URL, if not the run's journal")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="recipe override a.b=v")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.sets)
        given = {"max_drop": args.max_drop, "objective": args.objective}
        overrides.update({f"search.{k}": v for k, v in given.items() if v is not None})
        recipe = load_recipe(args.recipe, overrides)
        run_dir = Path(args.output) if args.output else recipe.run_dir
        cfg = recipe.search or SearchConfig()
        name = study_name(recipe, cfg)
        if args.storage is None and not (run_dir / SEARCH_DIR / "study.journal").is_file():
            raise EdgeCompressError("no search study here: run edgecompress search first", where=str(run_dir))
        import optuna

        try:
            study = optuna.load_study(study_name=name, storage=storage_for(args.storage, run_dir))
        except KeyError:
            raise EdgeCompressError(
                f"no study '{name}' in the storage: run edgecompress search with the same recipe and flags",
                where=str(run_dir / SEARCH_DIR),
            ) from None
    except EdgeCompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = trial_costs(study)
    total = savings(rows)
    shared = stage_seconds(run_dir)
    text = markdown(name, rows, total, shared)
    (run_dir / SEARCH_DIR / "cost.json").write_text(
        json.dumps({"study": name, "trials": rows, "total": total, "shared_stages_s": shared}, indent=1)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
