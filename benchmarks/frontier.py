"""The frontier: every variant of the run, the sparsity sweep's points and the peers in one table and one
plot (accuracy vs latency, marker size = MB, Pareto-optimal points marked), and the final artifact over
several training seeds.

    .venv/bin/python benchmarks/frontier.py recipes/bert_to_tiny.yaml [--final pruned-int8-dynamic] \
        [--seeds 7,1234] [--runs 100] [--also hand-picked=runs/other/models/pruned-int8-dynamic]

Runs (or reuses) the recipe first. Sweep points come from <run>/sweep/sweep.json (benchmarks/sparsity_curve.py)
and peers from <run>/peers/peers.json (benchmarks/peers.py) when those were run; each is used only when every
stage of its chain is finished with the key this recipe and code give it now (a point built before a code or
recipe change is refused, in one line naming it; --allow-stale measures it anyway, marked). Everything is measured again
in one interleaved run: test accuracy and macro-F1 (ONNX Runtime), size, p50 latency at batch 1, 1 thread.
--seeds trains the final artifact's chain again from each extra seed over the same data split (cached runs
<run>-seed<k>) and reports its test accuracy and its gap to that seed's teacher: mean and spread over the
recipe's seed and the extra ones.
Writes <run>/frontier/: benchmark.json, frontier.json, frontier.md, frontier.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgecompress.quiet import quiet_third_party

quiet_third_party()

from edgecompress.benchmark import stage as benchmark_stage  # noqa: E402
from edgecompress.benchmark.stage import evaluate_test_split  # noqa: E402
from edgecompress.errors import EdgeCompressError  # noqa: E402
from edgecompress.machine import machine_line  # noqa: E402
from edgecompress.pipeline import TEACHER_VARIANT, Pipeline, run_recipe  # noqa: E402
from edgecompress.recipe import load_recipe  # noqa: E402
from edgecompress.report.plots import accuracy_vs_latency  # noqa: E402
from edgecompress.studies import frontier as F  # noqa: E402
from edgecompress.studies.peers import pick_ours  # noqa: E402


def seed_figures(recipe, run_dir, seeds: list[int], final: str, log) -> list[dict]:
    """Test accuracy of the final artifact and of the teacher for the recipe's seed and each extra seed."""
    from transformers import AutoTokenizer

    rows = []
    for seed in [recipe.seed, *seeds]:
        r = recipe if seed == recipe.seed else F.seed_recipe(recipe, seed, run_dir)
        output = run_dir if seed == recipe.seed else None
        log(f"[frontier] seed {seed}: {output or r.run_dir}")
        with Pipeline(r, output=output, log=log) as pipe:
            folder = F.final_artifact(pipe, final)
            pipe.export(TEACHER_VARIANT, pipe.teacher())
            scores = {
                name: evaluate_test_split(
                    path, AutoTokenizer.from_pretrained(path), pipe.data(), r.data.max_length, 64
                )
                for name, path in ((final, folder), (TEACHER_VARIANT, pipe.variants[TEACHER_VARIANT]))
            }
        rows.append(
            {
                "seed": seed,
                "final_accuracy": scores[final]["accuracy"],
                "teacher_accuracy": scores[TEACHER_VARIANT]["accuracy"],
                "gap_pts": 100 * (scores[final]["accuracy"] - scores[TEACHER_VARIANT]["accuracy"]),
            }
        )
    return rows


def given_points(specs: list[str]) -> list[F.Point]:
    """``--also NAME=FOLDER`` as points of kind "given"; one line naming the bad one."""
    points = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise EdgeCompressError(f"expected NAME=FOLDER, got '{spec}'", where="--also")
        if not (Path(folder) / "model.onnx").is_file():
            raise EdgeCompressError(f"no model.onnx in '{folder}'", where=f"--also {name}")
        points.append(F.Point(name, "given", Path(folder)))
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument(
        "--final",
        default=None,
        help="the final artifact (default: the fastest variant within --max-drop validation points of the "
        "teacher, pick_ours; test figures never choose it)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="validation accuracy points below the teacher allowed when picking --final",
    )
    parser.add_argument("--seeds", default="", help="extra training seeds, comma-separated (e.g. 7,1234)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per variant (default: recipe's)")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="another finished artifact folder (model.onnx and its tokenizer) measured in the same run, e.g. "
        "the hand-picked point of another recipe (repeatable)",
    )
    parser.add_argument(
        "--allow-stale",
        action="store_true",
        help="measure sweep points and peers built from another recipe or code too (marked stale)",
    )
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got '{args.seeds}'")
    try:
        given = given_points(args.also)
        recipe = load_recipe(args.recipe)
        summary = run_recipe(recipe, output=args.output)
        run_dir = summary.run_dir
        report = json.loads((run_dir / "report.json").read_text())
        final = args.final or pick_ours(report, args.max_drop)[0]
        points = [F.Point(r["variant"], "run", run_dir / r["artifact"]) for r in report["rows"]]
        cfg = recipe.benchmark.headline_only(args.runs)
        with Pipeline(recipe, output=run_dir, reuse_only=True) as pipe:  # checks points, builds nothing
            points += F.current_points(F.sweep_points(pipe) + F.peer_points(pipe), args.allow_stale)
            clash = sorted({p.variant for p in points} & {g.variant for g in given})
            if clash:
                raise EdgeCompressError(f"'{clash[0]}' already names an artifact of the run", where="--also")
            points += given
            points = list({p.variant: p for p in points}.values())
            missing = [p.variant for p in points if not (p.folder / "model.onnx").is_file()]
            if missing:
                raise EdgeCompressError(
                    f"artifacts missing: {', '.join(missing)}", where=str(run_dir / "models")
                )
            out = run_dir / "frontier"
            out.mkdir(exist_ok=True)
            pipe.log(f"[frontier] measuring {len(points)} artifacts in one interleaved run")
            variants = {p.variant: p.folder for p in points}
            benchmark_stage.run(
                cfg, benchmark_stage.BenchmarkInputs(variants, recipe.sequence_length), pipe.context, out
            )
            log = pipe.log
        seed_rows = seed_figures(recipe, run_dir, seeds, final, log) if seeds else []
    except EdgeCompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    bench = json.loads((out / "benchmark.json").read_text())
    rows = F.frontier_rows(bench, points, TEACHER_VARIANT)
    accuracy_vs_latency(rows, out / "frontier.png", title=f"Frontier of {recipe.name}")
    ours = next(r for r in rows if r["variant"] == final)
    md = [
        f"## Frontier: `{recipe.name}` ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {machine_line(bench['machine'])}.",
        f"{len(rows)} artifacts (run variants, sweep points, peers) measured in one interleaved run: batch 1, "
        f"1 thread, sequence length {recipe.sequence_length}, {cfg.runs} timed runs each; test split "
        f"{bench['variants'][final]['test_samples']} examples. Ratios against `{TEACHER_VARIANT}`. Pareto: no other "
        "artifact is both faster and more accurate.",
        "",
        F.frontier_table(rows),
        "",
        "![frontier](frontier.png)",
        "",
        f"Final artifact `{final}`: {ours['x_smaller']:.1f}x smaller, {ours['x_faster']:.1f}x faster, "
        f"{ours['accuracy_delta_pts']:+.2f} points against the teacher.",
    ]
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "final": final,
        "rows": rows,
        "machine": bench["machine"],
    }
    if seed_rows:
        acc = F.spread([r["final_accuracy"] for r in seed_rows])
        gap = F.spread([r["gap_pts"] for r in seed_rows])
        md += [
            "",
            f"Over {len(seed_rows)} training seeds (same data split; each seed trains its own teacher):",
            "",
            "| seed | teacher test acc | final test acc | gap (pts) |",
            "|---|---|---|---|",
            *[
                f"| {r['seed']} | {r['teacher_accuracy']:.4f} | {r['final_accuracy']:.4f} | {r['gap_pts']:+.2f} |"
                for r in seed_rows
            ],
            f"| mean ± std | {F.spread([r['teacher_accuracy'] for r in seed_rows])['mean']:.4f} | "
            f"{acc['mean']:.4f} ± {acc['std']:.4f} | {gap['mean']:+.2f} ± {gap['std']:.2f} |",
        ]
        record["seeds"] = {"rows": seed_rows, "final_accuracy": acc, "gap_pts": gap}
    text = "\n".join(md) + "\n"
    (out / "frontier.md").write_text(text)
    (out / "frontier.json").write_text(json.dumps(record, indent=2, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
