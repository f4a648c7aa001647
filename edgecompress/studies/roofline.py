"""How far each artifact runs from this CPU's limit, and where its time goes.

- Peak: large GEMMs run through ONNX Runtime itself (``MatMul`` fp32, ``MatMulInteger`` uint8 x int8), i.e.
  the MLAS kernels the artifacts use, at 1 thread and all cores. A BLAS reached through torch would
  measure other kernels than the ones our artifacts run on.
- Operations per inference: 2 x the multiply-accumulates of every matrix product in the ONNX graph
  (MatMul, Gemm and their quantized forms, attention products included) at a given batch and sequence
  length. Shapes come from running the graph once (optimisations off) with every product's operands exposed
  as outputs, so dynamic reshapes and contrib ops need no shape inference. Element-wise work (softmax,
  layer norm, GELU, (de)quantization) is not counted as operations; the profiler shows its time.
- Achieved / peak: the time the counted products would take at peak (fp32 products at the fp32 peak, int8
  ones at the int8 peak) divided by the measured latency. 100 % would mean the run is nothing but
  peak-speed matrix products.
- Where time goes: ONNX Runtime's profiler (``SessionOptions.enable_profiling``) on the optimised graph the
  benchmark runs, kernel time summed per operator type.
"""

from __future__ import annotations

import bisect
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgecompress.export.onnx import ort_feed, ort_session

# operator -> index of the activation input "A" ([..., M, K]); every one computes prod(out) * K MACs
MATMUL_OPS = {
    "MatMul": 0,
    "Gemm": 0,
    "FusedMatMul": 0,
    "MatMulInteger": 0,
    "MatMulIntegerToFloat": 0,
    "DynamicQuantizeMatMul": 0,
    "QLinearMatMul": 0,
    "QGemm": 0,
    "MatMulNBits": 0,
}
INT8_OPS = {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearMatMul", "QGemm"}
# heavy operators this counter does not model: reported, never silently left out
UNCOUNTED_OPS = {
    "Attention",
    "MultiHeadAttention",
    "QAttention",
    "GroupQueryAttention",
    "PackedAttention",
    "Conv",
    "ConvInteger",
    "QLinearConv",
    "ConvTranspose",
    "Einsum",
}


@dataclass
class OpCount:
    """Operations (2 x MACs) of one inference at ``batch_size`` x ``sequence_length``."""

    batch_size: int
    sequence_length: int
    fp32_ops: int = 0
    int8_ops: int = 0
    by_op_type: dict[str, int] = field(default_factory=dict)
    products: int = 0
    uncounted: dict[str, int] = field(default_factory=dict)

    @property
    def total_ops(self) -> int:
        return self.fp32_ops + self.int8_ops


def _attr(node, name: str, default=0):
    for a in node.attribute:
        if a.name == name:
            return a.i
    return default


def _compute_precision(node, producers: dict) -> str:
    """int8 for quantized products (incl. QDQ pairs that ORT fuses, and MatMulNBits at accuracy_level 4)."""
    if node.op_type in INT8_OPS:
        return "int8"
    if node.op_type == "MatMulNBits":  # 4-bit weights; level 4 computes in int8, otherwise fp32
        return "int8" if _attr(node, "accuracy_level") == 4 else "fp32"
    operands = [name for name in node.input[:2] if name]
    if operands and all(
        producers.get(name) is not None and producers[name].op_type == "DequantizeLinear" for name in operands
    ):
        return "int8"  # static QDQ: both operands int8, run as QLinearMatMul / QGemm
    return "fp32"


def _shapes(model, feeds: dict[str, np.ndarray], names: set[str]) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of ``names`` for these inputs: initializers from the graph, the rest by one run."""
    import onnx

    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer if init.name in names}
    wanted = sorted(names - set(shapes) - set(feeds))
    shapes.update({name: tuple(np.asarray(v).shape) for name, v in feeds.items()})
    if wanted:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        outputs = {o.name for o in probe.graph.output}
        for name in wanted:
            if name not in outputs:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
        session = ort_session(probe.SerializeToString(), threads=1, optimization="none")
        results = session.run(wanted, feeds)
        shapes.update({name: tuple(r.shape) for name, r in zip(wanted, results, strict=True)})
    return shapes


def count_ops(onnx_path: Path, feeds: dict[str, np.ndarray]) -> OpCount:
    """Operations per inference of the graph at ``onnx_path`` for ``feeds`` (its batch and sequence length)."""
    import onnx

    model = onnx.load(str(onnx_path))
    declared = {i.name for i in model.graph.input}
    feeds = {k: np.asarray(v) for k, v in feeds.items() if k in declared}
    producers = {out: node for node in model.graph.node for out in node.output}
    products = [n for n in model.graph.node if n.op_type in MATMUL_OPS]
    names = {n.input[MATMUL_OPS[n.op_type]] for n in products} | {n.output[0] for n in products}
    shapes = _shapes(model, feeds, names)
    ids = next(iter(feeds.values()))
    count = OpCount(batch_size=int(ids.shape[0]), sequence_length=int(ids.shape[-1]))
    by_type: dict[str, int] = defaultdict(int)
    for node in products:
        a = shapes[node.input[MATMUL_OPS[node.op_type]]]
        out = shapes[node.output[0]]
        transposed = node.op_type in ("Gemm", "QGemm", "FusedMatMul") and _attr(node, "transA")
        k = a[-2] if transposed else a[-1]
        ops = 2 * int(np.prod(out, dtype=np.int64)) * int(k)
        if _compute_precision(node, producers) == "int8":
            count.int8_ops += ops
        else:
            count.fp32_ops += ops
        by_type[node.op_type] += ops
        count.products += 1
    count.by_op_type = dict(by_type)
    uncounted: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        if node.op_type in UNCOUNTED_OPS:
            uncounted[node.op_type] += 1
    count.uncounted = dict(uncounted)
    return count


# --- peak throughput ---------------------------------------------------------------------------------


def matmul_model(precision: str, m: int, k: int, n: int, seed: int = 0):
    """One matrix product A[m,k] x B[k,n] with B a constant (a layer's weights), as ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    if precision == "fp32":
        weights = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type, inits = TensorProto.FLOAT, TensorProto.FLOAT, [weights]
    elif precision == "int8":  # what dynamic quantization runs: uint8 activations x int8 weights -> int32
        weights = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "B")
        zero = numpy_helper.from_array(np.array(128, dtype=np.uint8), "A_zero")
        node = helper.make_node("MatMulInteger", ["A", "B", "A_zero"], ["Y"])
        a_type, y_type, inits = TensorProto.UINT8, TensorProto.INT32, [weights, zero]
    else:
        raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
    graph = helper.make_graph(
        [node],
        f"peak_{precision}",
        [helper.make_tensor_value_info("A", a_type, [m, k])],
        [helper.make_tensor_value_info("Y", y_type, [m, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def peak_input(precision: str, m: int, k: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if precision == "fp32":
        return rng.standard_normal((m, k)).astype(np.float32)
    return rng.integers(0, 256, (m, k), dtype=np.uint8)


def measure_peak(
    precision: str, threads: int, size: int = 1024, runs: int = 20, warmup: int = 3, min_seconds: float = 0.5
) -> dict:
    """Best and median throughput (GOP/s) of a ``size``-cubed GEMM through ONNX Runtime.

    Timed at least ``runs`` times and ``min_seconds``; the peak is the best run (the machine's limit),
    the median shows how steady it is.
    """
    session = ort_session(matmul_model(precision, size, size, size).SerializeToString(), threads=threads)
    feed = {"A": peak_input(precision, size, size)}
    for _ in range(warmup):
        session.run(None, feed)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    ops = 2 * size**3
    return {
        "precision": precision,
        "threads": threads,
        "shape": [size, size, size],
        "runs": len(times),
        "best_ms": 1e3 * min(times),
        "median_ms": 1e3 * float(np.median(times)),
        "peak_gops": ops / min(times) / 1e9,
        "median_gops": ops / float(np.median(times)) / 1e9,
    }


def achieved(count: OpCount, latency_ms: float, peak_fp32_gops: float, peak_int8_gops: float) -> dict:
    """Achieved throughput and the fraction of the time the counted products would need at peak."""
    ideal_ms = 1e3 * (count.fp32_ops / (peak_fp32_gops * 1e9) + count.int8_ops / (peak_int8_gops * 1e9))
    return {
        "gops": count.total_ops / (latency_ms / 1e3) / 1e9,
        "ideal_ms": ideal_ms,
        "of_peak": ideal_ms / latency_ms,
    }


# --- ONNX Runtime profiler -------------------------------------------------------------------------


def summarize_profile(events: list[dict], skip_runs: int = 0) -> dict:
    """Kernel time per operator type, per inference, from an ONNX Runtime profile (Chrome trace events).

    ``skip_runs``: the first runs (warm-up) are left out; node events count towards the kept ``model_run``
    they fall inside. Per operator type the median over runs of its summed kernel time, so a run
    pre-empted by another process does not inflate whichever operator it hit.
    """
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )[skip_runs:]
    if not runs:
        raise ValueError("the profile has no model_run events after the skipped warm-up runs")
    starts = [e["ts"] for e in runs]
    n = len(runs)
    time_us: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(n))
    calls: dict[str, int] = defaultdict(int)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = bisect.bisect_right(starts, e["ts"]) - 1
        if i < 0 or e["ts"] > runs[i]["ts"] + runs[i]["dur"]:
            continue
        op = e.get("args", {}).get("op_name", "?")
        time_us[op][i] += e["dur"]
        calls[op] += 1
    median_us = {op: float(np.median(t)) for op, t in time_us.items()}
    kernel_us = sum(median_us.values())
    ops = [
        {
            "op_type": op,
            "ms_per_run": us / 1e3,
            "share": us / kernel_us if kernel_us else 0.0,
            "calls_per_run": calls[op] / n,
        }
        for op, us in median_us.items()
    ]
    ops.sort(key=lambda r: -r["ms_per_run"])
    return {
        "runs": n,
        "run_ms": float(np.median([e["dur"] for e in runs])) / 1e3,
        "kernel_ms": kernel_us / 1e3,
        "operators": ops,
    }


def profile_operators(
    onnx_path: Path, feeds: dict[str, np.ndarray], threads: int, runs: int = 50, warmup: int = 5
) -> dict:
    """Run the artifact as the benchmark does, with the profiler on; summary per operator type."""
    with tempfile.TemporaryDirectory(prefix="edgecompress-profile-") as tmp:
        session = ort_session(onnx_path, threads=threads, profile_prefix=str(Path(tmp) / "ort"))
        feeds = ort_feed(session, feeds)
        for _ in range(warmup + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    return {"threads": threads, **summarize_profile(events, skip_runs=warmup)}


def count_record(count: OpCount) -> dict:
    return {**asdict(count), "total_ops": count.total_ops}


# --- Markdown ----------------------------------------------------------------------------------------


def peak_table(peaks: list[dict]) -> str:
    lines = [
        "| precision | threads | peak GOP/s (best run) | median GOP/s | GEMM M x K x N | runs |",
        "|---|---|---|---|---|---|",
    ]
    for p in peaks:
        shape = " x ".join(str(d) for d in p["shape"])
        lines.append(
            f"| {p['precision']} | {p['threads']} | {p['peak_gops']:.0f} | {p['median_gops']:.0f} | {shape} | "
            f"{p['runs']} |"
        )
    return "\n".join(lines)


def achieved_table(rows: list[dict]) -> str:
    """One row per variant: operations per inference, then per setting achieved GOP/s and % of peak."""
    settings = sorted({(r["batch_size"], r["threads"]) for r in rows})
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    by = {(r["variant"], r["batch_size"], r["threads"]): r for r in rows}
    lines = [
        "| variant | GOP per inference (b1) | int8 share of ops | "
        + " | ".join(f"b{b} {t} thr: ms, GOP/s, % of peak" for b, t in settings)
        + " |",
        "|" + "---|" * (3 + len(settings)),
    ]
    for v in variants:
        first = by[(v, *settings[0])]
        per_item = first["total_ops"] / first["batch_size"]
        cells = [
            f"{by[v, b, t]['latency_ms']:.2f}, {by[v, b, t]['gops']:.0f}, {100 * by[v, b, t]['of_peak']:.1f} %"
            for b, t in settings
        ]
        lines.append(
            f"| `{v}` | {per_item / 1e9:.3g} | {100 * first['int8_ops'] / max(1, first['total_ops']):.0f} % | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def operator_table(profiles: dict[str, dict], top: int = 8) -> str:
    """Share of kernel time per operator type (rows) and variant (columns); the rest summed as 'other'."""
    names = list(profiles)
    ranked: dict[str, float] = defaultdict(float)
    for prof in profiles.values():
        for op in prof["operators"]:
            ranked[op["op_type"]] = max(ranked[op["op_type"]], op["share"])
    keep = [op for op, _ in sorted(ranked.items(), key=lambda kv: -kv[1])[:top]]
    shares = {v: {op["op_type"]: op for op in prof["operators"]} for v, prof in profiles.items()}
    lines = [
        "| operator type | " + " | ".join(f"`{v}`" for v in names) + " |",
        "|" + "---|" * (1 + len(names)),
    ]
    for op in keep:
        cells = []
        for v in names:
            o = shares[v].get(op)
            cells.append(f"{100 * o['share']:.1f} % ({o['ms_per_run']:.3f} ms)" if o else "")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    other = []
    for v in names:
        rest = [o for k, o in shares[v].items() if k not in keep]
        other.append(
            f"{100 * sum(o['share'] for o in rest):.1f} % ({sum(o['ms_per_run'] for o in rest):.3f} ms)"
        )
    lines.append("| other | " + " | ".join(other) + " |")
    lines.append(
        "| kernels / whole run (ms) | "
        + " | ".join(f"{p['kernel_ms']:.3f} / {p['run_ms']:.3f}" for p in profiles.values())
        + " |"
    )
    return "\n".join(lines)
