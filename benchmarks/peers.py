"""Our final artifact against what a user would pick instead, measured side by side in one run.

    .venv/bin/python benchmarks/peers.py recipes/bert_to_tiny.yaml [--ours VARIANT] [--max-drop 2.0]

  (1) the teacher exported with Optimum + ORTQuantizer dynamic int8 (the one-liner; no distillation)
  (2) the recipe's student trained on labels only (no teacher)
  (3) the same student trained on labels + soft targets (no attention or hidden-state transfer)
  (4) ours: --ours VARIANT, or by default the fastest variant (batch 1, 1 thread) of the run's report.json
      whose validation accuracy is within --max-drop points of teacher-fp32's (chosen on validation, the
      test figures are only reported; see edgecompress/studies/peers.py)
(2)-(3) are exported and int8-quantized with the recipe's int8_dynamic config, like our student.

Reuses the recipe's run folder: run the recipe first (`edgecompress run RECIPE`). Peers are cached stages
(models/teacher-int8-dynamic, ablation/labels, ablation/kd, models/ablation-*-int8-dynamic); the
measurement is redone on every call: size, test accuracy / macro-F1 (ONNX Runtime), latency interleaved
round-robin over all four at the recipe's batch sizes and thread counts. Measure on an idle machine.
Writes <run>/peers/: benchmark.json (raw), peers.json, peers.csv, peers.md (the section for
benchmarks/RESULTS.md), and prints peers.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from edgecompress.quiet import quiet_third_party

quiet_third_party()

from edgecompress.benchmark import stage as benchmark_stage  # noqa: E402
from edgecompress.errors import EdgeCompressError  # noqa: E402
from edgecompress.export.artifact import read_manifest  # noqa: E402
from edgecompress.machine import machine_line  # noqa: E402
from edgecompress.pipeline import Pipeline  # noqa: E402
from edgecompress.recipe import load_recipe  # noqa: E402
from edgecompress.report.tables import write_csv  # noqa: E402
from edgecompress.studies import peers as P  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    parser.add_argument("--ours", default=None, help="our variant (a folder name under <run>/models)")
    parser.add_argument(
        "--max-drop",
        type=float,
        default=2.0,
        help="validation accuracy points below teacher-fp32 allowed when picking ours from report.json (default 2)",
    )
    parser.add_argument(
        "--allow-stale", action="store_true", help="compare even if ours was built from another recipe"
    )
    parser.add_argument("--runs", type=int, default=None, help="timed runs per setting (default: recipe's)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument(
        "--target-speed", type=float, default=P.TARGET_SPEED, help="x faster than (1) to call met"
    )
    parser.add_argument(
        "--target-size", type=float, default=P.TARGET_SIZE, help="x smaller than (1) to call met"
    )
    args = parser.parse_args(argv)
    try:
        recipe = load_recipe(args.recipe)
        pipe = Pipeline(recipe, output=args.output)
        if args.ours:
            ours, why = args.ours, "given with --ours"
        else:
            report_file = pipe.run_dir / "report.json"
            if not report_file.is_file():
                raise EdgeCompressError(
                    "no report.json: run the recipe first (edgecompress run RECIPE) or pass --ours",
                    where=str(pipe.run_dir),
                )
            ours, why = P.pick_ours(json.loads(report_file.read_text()), args.max_drop)
        pipe.log(f"[peers] ours = {ours} ({why})")
        built_with = read_manifest(P.finished_variant(pipe.run_dir, ours)).get("recipe", {})
        stale = P.stale_fields(built_with, pipe.context.recipe)
        if stale and not args.allow_stale:
            raise EdgeCompressError(
                f"'{ours}' was built with a recipe that differs in: {', '.join(stale)}; re-run the recipe "
                "(edgecompress run RECIPE), or pass --allow-stale to compare anyway",
                where="--ours",
            )
        peers = P.build_peers(pipe, ours)
    except EdgeCompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    cfg = recipe.benchmark.model_copy(deep=True)
    cfg.runs = args.runs or cfg.runs
    cfg.warmup = cfg.warmup if args.warmup is None else args.warmup
    out = pipe.run_dir / "peers"
    out.mkdir(exist_ok=True)
    pipe.log("[peers] measuring all four in one interleaved run")
    benchmark_stage.run(
        cfg,
        benchmark_stage.BenchmarkInputs(
            {variant: folder for variant, folder in peers.values()}, recipe.sequence_length
        ),
        pipe.context,
        out,
    )
    pipe.release()
    benchmark = json.loads((out / "benchmark.json").read_text())
    preset = read_manifest(peers["1"][1]).get("preset")
    rows = P.peer_rows(benchmark, peers)
    date = time.strftime("%Y-%m-%d %H:%M")
    md = [
        f"## Peers: `{recipe.name}` ({date})",
        "",
        f"Machine: {machine_line(benchmark['machine'])}.",
        f"Test split: {rows[0]['test_samples']} examples. Sequence length {recipe.sequence_length}; "
        f"{cfg.runs} timed runs per setting after {cfg.warmup} warm-up, all four interleaved round-robin "
        f"(ONNX Runtime, CPU). Peers (1)-(3): int8 dynamic, preset `{preset}`. Ours = `{ours}`: {why}."
        + (f" Note: ours was built with a recipe that differs in {', '.join(stale)}." if stale else ""),
        "",
        P.peer_tables(rows),
        "",
        "Target for (4) against (1):",
        "",
        *P.target_check(rows, args.target_speed, args.target_size),
        "",
    ]
    text = "\n".join(md)
    (out / "peers.md").write_text(text)
    write_csv(rows, out / "peers.csv")
    record = {"date": date, "recipe": recipe.name, "ours": ours, "ours_rule": why, "rows": rows}
    record["machine"] = benchmark["machine"]
    (out / "peers.json").write_text(json.dumps(record, indent=2, default=str))
    print(text)
    print(f"files: {out}/peers.md, peers.json, peers.csv, benchmark.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
