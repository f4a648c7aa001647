"""The sparsity curve: how much accuracy each share of pruned heads and FFN units costs, at 2 and 3 layers.

    .venv/bin/python benchmarks/sparsity_curve.py recipes/bert_to_tiny.yaml \
        [--fractions 0.2,0.3,0.4,0.5,0.6,0.7] [--layers 2,3] [--variant int8-dynamic]

Each point is the recipe's prune section (importance, vocabulary, embeddings, steps, recovery) with both the
head and the FFN fraction set to the point's value, applied to the recipe's student at that depth; it is
exported and quantized with the recipe's int8 variant for the pruned model (or --variant). Points are cached
stages of the recipe's run folder (sweep/...), so a second call only measures. All points, and the teacher
for the ratios, are measured in one interleaved run: test accuracy and macro-F1 (ONNX Runtime), size, p50
latency at batch 1, 1 thread. Validation accuracy is the prune stage's, after recovery.
Writes <run>/sweep/: benchmark.json, sweep.json, sweep.md (the section for benchmarks/RESULTS.md).
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
from edgecompress.machine import machine_line  # noqa: E402
from edgecompress.pipeline import TEACHER_VARIANT, Pipeline  # noqa: E402
from edgecompress.recipe import load_recipe  # noqa: E402
from edgecompress.studies.sweep import SweepPoint, build_point, final_variant_config  # noqa: E402


def numbers(kind):
    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None

    return parse


def table(rows: list[dict]) -> str:
    head = [
        "| point | layers | heads + FFN removed | heads kept | FFN units kept | params (M) | MB | "
        "validation acc | test acc | macro-F1 | p50 ms b1 1 thr | x faster than teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        val = "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}"
        head.append(
            f"| {r['point']} | {r['layers']} | {r['fraction']:.0%} | {r['heads']} | {r['units']} | "
            f"{r['params'] / 1e6:.2f} | {r['size_mb']:.2f} | {val} | {r['accuracy']:.4f} | "
            f"{r['f1_macro']:.4f} | {r['p50_ms']:.2f} | {r['x_faster']:.1f} |"
        )
    return "\n".join(head)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument("--fractions", type=numbers(float), default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--layers", type=numbers(int), default=[2, 3])
    parser.add_argument("--variant", default=None, help="the recipe's int8 variant the points get")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per point (default: recipe's)")
    args = parser.parse_args(argv)
    if any(not 0 < f < 1 for f in args.fractions):
        parser.error("--fractions must lie strictly between 0 and 1")
    try:
        recipe = load_recipe(args.recipe)
        with Pipeline(recipe, output=args.output) as pipe:
            qcfg = final_variant_config(pipe, args.variant)
            points = [SweepPoint(n, f) for n in args.layers for f in args.fractions]
            built = {p: build_point(pipe, p, qcfg) for p in points}
            pipe.export(TEACHER_VARIANT, pipe.teacher())
            variants = {TEACHER_VARIANT: pipe.variants[TEACHER_VARIANT]}
            variants |= {built[p]["quantized"].name: built[p]["quantized"] for p in points}
            cfg = recipe.benchmark.headline_only(args.runs)
            out = pipe.run_dir / "sweep"
            out.mkdir(exist_ok=True)
            pipe.log(f"[sweep] measuring {len(points)} points and the teacher in one interleaved run")
            benchmark_stage.run(
                cfg, benchmark_stage.BenchmarkInputs(variants, recipe.sequence_length), pipe.context, out
            )
    except EdgeCompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    bench = json.loads((out / "benchmark.json").read_text())
    latency = {r["variant"]: r["p50_ms"] for r in bench["latency"]}
    teacher_ms = latency[TEACHER_VARIANT]
    rows = []
    for p in points:
        name, rec = built[p]["quantized"].name, built[p]["record"]
        res = bench["variants"][name]
        rows.append(
            {
                "point": p.name,
                "layers": p.layers,
                "fraction": p.fraction,
                "heads": f"{rec['heads_after']}/{rec['heads_before']}",
                "units": f"{rec['units_after']}/{rec['units_before']}",
                "params": res["params"],
                "size_mb": res["size_mb"],
                "val_accuracy": (rec.get("validation") or {}).get("accuracy"),  # None without recovery
                "accuracy": res["accuracy"],
                "f1_macro": res["f1_macro"],
                "p50_ms": latency[name],
                "x_faster": teacher_ms / latency[name],
                "variant": name,
            }
        )
    teacher = bench["variants"][TEACHER_VARIANT]
    md = "\n".join(
        [
            f"## Sparsity curve: `{recipe.name}`, {qcfg.name} ({time.strftime('%Y-%m-%d %H:%M')})",
            "",
            f"Machine: {machine_line(bench['machine'])}.",
            f"Teacher fp32: test accuracy {teacher['accuracy']:.4f}, {teacher['size_mb']:.1f} MB, {teacher_ms:.2f} ms "
            f"(batch 1, 1 thread, sequence length {recipe.sequence_length}, all interleaved in one run).",
            "",
            table(rows),
            "",
        ]
    )
    (out / "sweep.md").write_text(md)
    (out / "sweep.json").write_text(json.dumps({"machine": bench["machine"], "rows": rows}, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
