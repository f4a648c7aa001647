"""How far from this CPU's limit each variant runs, and where its time goes.

    .venv/bin/python benchmarks/roofline.py recipes/bert_to_tiny.yaml [--benchmark FILE] [--variants a,b]

1. Peak: fp32 (MatMul) and int8 (MatMulInteger, uint8 x int8) GEMMs of --peak-size cubed through ONNX
   Runtime, the kernels the artifacts run on, at 1 thread and at all cores (best run = peak).
2. Operations per inference of every variant from its ONNX graph: 2 x MACs of all matrix products
   (attention products included) at the benchmark's sequence length and each batch size.
3. Achieved = operations / measured p50 latency; "% of peak" = time the products would take at peak
   (fp32 ones at the fp32 peak, int8 ones at the int8 peak) / measured latency.
4. ONNX Runtime's profiler on each variant (batch 1, --profile-threads): kernel time per operator type.

Latencies come from a benchmark.json of the same run (default <run>/peers/benchmark.json written by
benchmarks/peers.py, else <run>/benchmark/benchmark.json), so run that first on an idle machine; the peaks
and the profiles are measured here, so keep the machine idle for this script too.
Writes <run>/roofline/roofline.json and roofline.md, and prints roofline.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgecompress.quiet import quiet_third_party

quiet_third_party()

from edgecompress.benchmark.latency import fixed_length_inputs, resolve_threads  # noqa: E402
from edgecompress.context import resolve_in_run  # noqa: E402
from edgecompress.data.examples import PreparedData  # noqa: E402
from edgecompress.machine import machine_line  # noqa: E402
from edgecompress.recipe import load_recipe  # noqa: E402
from edgecompress.studies import roofline as R  # noqa: E402


def _benchmark_file(run_dir: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    for candidate in (run_dir / "peers" / "benchmark.json", run_dir / "benchmark" / "benchmark.json"):
        if candidate.is_file():
            return candidate
    raise SystemExit(
        f"error: no benchmark.json under {run_dir}/peers or {run_dir}/benchmark: run the recipe first"
    )


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    parser.add_argument("--benchmark", default=None, help="benchmark.json with the latencies to use")
    parser.add_argument("--variants", default=None, help="comma-separated (default: all in benchmark.json)")
    parser.add_argument("--peak-size", type=int, default=1024, help="M = K = N of the peak GEMM")
    parser.add_argument("--peak-runs", type=int, default=30)
    parser.add_argument("--profile-runs", type=int, default=50)
    parser.add_argument("--profile-threads", type=int, default=1, help="0 = all cores")
    parser.add_argument("--top", type=int, default=8, help="operator types shown (the rest: 'other')")
    args = parser.parse_args(argv)

    recipe = load_recipe(args.recipe)
    run_dir = Path(args.output) if args.output else recipe.run_dir
    bench_file = _benchmark_file(run_dir, args.benchmark)
    bench = json.loads(bench_file.read_text())
    variants = args.variants.split(",") if args.variants else list(bench["variants"])
    missing = [v for v in variants if v not in bench["variants"]]
    if missing:
        print(f"error: --variants: not in {bench_file}: {', '.join(missing)}", file=sys.stderr)
        return 2
    latency = [r for r in bench["latency"] if r["variant"] in variants]
    seq = latency[0]["sequence_length"]
    texts, pairs = PreparedData.load(run_dir / "data").texts("validation")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    peaks = []
    for threads in sorted({r["threads"] for r in latency}):
        for precision in ("fp32", "int8"):
            peaks.append(R.measure_peak(precision, threads, args.peak_size, runs=args.peak_runs))
            log(f"  peak {precision}, {threads} thread(s): {peaks[-1]['peak_gops']:.0f} GOP/s")
    peak = {(p["precision"], p["threads"]): p["peak_gops"] for p in peaks}

    rows, counts, profiles = [], {}, {}
    for v in variants:
        folder = resolve_in_run(bench["variants"][v]["artifact"], run_dir)
        tok = AutoTokenizer.from_pretrained(folder)
        for b in sorted({r["batch_size"] for r in latency}):
            count = R.count_ops(folder / "model.onnx", fixed_length_inputs(tok, texts, b, seq, pairs))
            counts[f"{v}@b{b}"] = R.count_record(count)
            if count.uncounted:
                log(f"  warning: {v}: operators not counted: {count.uncounted}")
            for lat in (r for r in latency if r["variant"] == v and r["batch_size"] == b):
                t = lat["threads"]
                rows.append(
                    {
                        "variant": v,
                        "batch_size": b,
                        "threads": t,
                        "latency_ms": lat["p50_ms"],
                        "fp32_ops": count.fp32_ops,
                        "int8_ops": count.int8_ops,
                        "total_ops": count.total_ops,
                        **R.achieved(count, lat["p50_ms"], peak["fp32", t], peak["int8", t]),
                    }
                )
        feeds = fixed_length_inputs(tok, texts, 1, seq, pairs)
        threads = resolve_threads(args.profile_threads)
        profiles[v] = R.profile_operators(folder / "model.onnx", feeds, threads, runs=args.profile_runs)
        log(f"  {v}: {counts[f'{v}@b1']['total_ops'] / 1e9:.3g} GOP per inference, profiled")

    date = time.strftime("%Y-%m-%d %H:%M")
    md = "\n".join(
        [
            f"## Roofline: `{recipe.name}` ({date})",
            "",
            f"Machine: {machine_line(bench['machine'])}.",
            f"Latencies: p50 from `{bench_file}`; sequence length {seq}. Peaks measured now through ONNX "
            "Runtime (the artifacts' own kernels); operations = 2 x MACs of all matrix products in the graph.",
            "",
            "### Peak matrix-multiply throughput",
            "",
            R.peak_table(peaks),
            "",
            "### Achieved against peak",
            "",
            "% of peak = time the counted products would take at peak (fp32 products at the fp32 peak, int8 at "
            "the int8 peak) / measured latency, at the same thread count.",
            "",
            R.achieved_table(rows),
            "",
            f"### Where the time goes (ONNX Runtime profiler, batch 1, {resolve_threads(args.profile_threads)} "
            f"thread(s), {args.profile_runs} runs, optimised graph)",
            "",
            "Share of summed kernel time per operator type (median ms per inference). The last row compares "
            "summed kernel time with the whole run, whose extra is time between kernels (inflated by the "
            "profiler itself).",
            "",
            R.operator_table(profiles, args.top),
            "",
        ]
    )
    out = run_dir / "roofline"
    out.mkdir(exist_ok=True)
    (out / "roofline.md").write_text(md)
    record = {
        "date": date,
        "machine": bench["machine"],
        "benchmark": str(bench_file),
        "peaks": peaks,
        "ops": counts,
        "achieved": rows,
        "profiles": profiles,
    }
    (out / "roofline.json").write_text(json.dumps(record, indent=2))
    print(md)
    log(f"files: {out}/roofline.md, roofline.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
