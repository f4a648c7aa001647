"""Roofline pieces: exact operation counts, the peak GEMM models, profiler parsing, achieved / peak."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import make_tiny_bert
from onnx import TensorProto, helper, numpy_helper

from edgecompress.export.onnx import ort_session
from edgecompress.studies import roofline as R


def _save(tmp_path, nodes, inputs, outputs, inits, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / name)
    return tmp_path / name


def test_count_ops_of_a_hand_built_graph(tmp_path):
    """MatMul on a 3-D input, a Gemm with transA, and a static-QDQ MatMul (counted as int8)."""
    f = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "W1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "W2")
    w3q = numpy_helper.from_array(rng.integers(-5, 5, (4, 6), dtype=np.int8), "W3q")
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")
    zero_u8 = numpy_helper.from_array(np.array(0, dtype=np.uint8), "zu")
    zero_i8 = numpy_helper.from_array(np.array(0, dtype=np.int8), "zi")
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["H"]),  # [2,3,8] x [8,16]: 2*3*16*8 MACs
        helper.make_node("Reshape", ["H", "shape"], ["H2"]),  # [6,16]
        helper.make_node("Transpose", ["H2"], ["H2t"], perm=[1, 0]),  # [16,6]
        helper.make_node("Gemm", ["H2t", "W2"], ["G"], transA=1),  # A^T [6,16] x [16,4]: 6*4*16 MACs
        helper.make_node("QuantizeLinear", ["G", "s", "zu"], ["Gq"]),
        helper.make_node("DequantizeLinear", ["Gq", "s", "zu"], ["Gd"]),
        helper.make_node("DequantizeLinear", ["W3q", "s", "zi"], ["W3"]),
        helper.make_node("MatMul", ["Gd", "W3"], ["Y"]),  # [6,4] x [4,6] in int8: 6*6*4 MACs
    ]
    shape = numpy_helper.from_array(np.array([-1, 16], dtype=np.int64), "shape")
    path = _save(
        tmp_path,
        nodes,
        [helper.make_tensor_value_info("X", f, ["batch", 3, 8])],
        [helper.make_tensor_value_info("Y", f, ["rows", 6])],
        [w1, w2, w3q, scale, zero_u8, zero_i8, shape],
    )
    count = R.count_ops(path, {"X": np.zeros((2, 3, 8), np.float32), "unused": np.zeros(1)})
    assert count.fp32_ops == 2 * (2 * 3 * 16 * 8 + 6 * 4 * 16)
    assert count.int8_ops == 2 * (6 * 6 * 4)
    assert count.by_op_type == {"MatMul": 2 * (2 * 3 * 16 * 8 + 6 * 6 * 4), "Gemm": 2 * 6 * 4 * 16}
    assert count.products == 3 and count.uncounted == {}
    assert (count.batch_size, count.sequence_length) == (2, 8)


def _bert_ops(layers, hidden, inter, labels, batch, seq) -> int:
    """2 x MACs of a BERT classifier: Q,K,V,O + FFN + the two attention products per layer, pooler, head."""
    per_layer = 4 * seq * hidden * hidden + 2 * seq * hidden * inter + 2 * seq * seq * hidden
    return 2 * batch * (layers * per_layer + hidden * hidden + hidden * labels)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A tiny BERT classifier exported with Optimum, and its int8 dynamic quantization."""
    from edgecompress.export.onnx import export
    from edgecompress.quantize import quantize
    from edgecompress.quantize.config import Int8DynamicConfig

    root = tmp_path_factory.mktemp("roofline")
    make_tiny_bert(root / "pt", layers=2, hidden=32, heads=4, intermediate=64, with_head=True)
    from transformers import AutoTokenizer

    from edgecompress.modeling.loading import load_saved_classifier

    export(
        load_saved_classifier(root / "pt"),
        AutoTokenizer.from_pretrained(root / "pt"),
        root / "fp32",
        opset=17,
        max_length=16,
    )
    quantize(Int8DynamicConfig(), root / "fp32", root / "int8", None)
    return root


@pytest.mark.parametrize("batch,seq", [(1, 16), (3, 8)])
def test_count_ops_of_an_exported_bert_is_exact(tiny_onnx, batch, seq):
    feeds = {
        "input_ids": np.full((batch, seq), 7, np.int64),
        "attention_mask": np.ones((batch, seq), np.int64),
        "token_type_ids": np.zeros((batch, seq), np.int64),
    }
    expected = _bert_ops(layers=2, hidden=32, inter=64, labels=2, batch=batch, seq=seq)
    fp32 = R.count_ops(tiny_onnx / "fp32" / "model.onnx", feeds)
    assert fp32.fp32_ops == expected and fp32.int8_ops == 0
    assert fp32.products == 2 * 8 + 2  # 6 weight products + 2 attention products per layer; pooler, head
    int8 = R.count_ops(tiny_onnx / "int8" / "model.onnx", feeds)
    assert int8.int8_ops == expected and int8.fp32_ops == 0  # dynamic int8 quantizes every product
    assert set(int8.by_op_type) == {"MatMulInteger"}


def test_count_ops_of_4bit_weights(tiny_onnx, tmp_path):
    """MatMulNBits (4-bit weights) at accuracy_level 4 computes in int8; the attention products stay fp32."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(tiny_onnx / "fp32" / "model.onnx"),
        bits=4,
        block_size=32,
        is_symmetric=True,
        accuracy_level=4,
        op_types_to_quantize=("MatMul",),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(tmp_path / "int4.onnx"), use_external_data_format=False)
    feeds = {
        "input_ids": np.full((1, 16), 7, np.int64),
        "attention_mask": np.ones((1, 16), np.int64),
        "token_type_ids": np.zeros((1, 16), np.int64),
    }
    count = R.count_ops(tmp_path / "int4.onnx", feeds)
    linear = 2 * 2 * (4 * 16 * 32 * 32 + 2 * 16 * 32 * 64)  # 2 layers: Q, K, V, O, FFN in and out
    assert count.by_op_type["MatMulNBits"] == count.int8_ops == linear
    assert count.total_ops == _bert_ops(layers=2, hidden=32, inter=64, labels=2, batch=1, seq=16)


def test_peak_models_compute_the_product():
    for precision in ("fp32", "int8"):
        model = R.matmul_model(precision, 4, 8, 3)
        a = R.peak_input(precision, 4, 8)
        if precision == "int8":
            # below 128, no pair of uint8 x int8 products overflows int16: ONNX Runtime's AVX2 kernel
            # (vpmaddubsw) saturates there, so only such inputs have one exact product on every x86 CPU
            a = a // 2
        (y,) = ort_session(model.SerializeToString(), threads=1).run(None, {"A": a})
        b = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "B"))
        if precision == "fp32":
            np.testing.assert_allclose(y, a @ b, rtol=1e-5)
        else:
            np.testing.assert_array_equal(y, (a.astype(np.int32) - 128) @ b.astype(np.int32))
    peak = R.measure_peak("int8", threads=1, size=64, runs=3, warmup=1, min_seconds=0)
    assert peak["runs"] >= 3 and peak["peak_gops"] >= peak["median_gops"] > 0
    assert peak["peak_gops"] == pytest.approx(2 * 64**3 / (peak["best_ms"] / 1e3) / 1e9)


def _event(cat, name, ts, dur, op=None):
    e = {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "pid": 1, "tid": 1}
    if op:
        e["args"] = {"op_name": op, "provider": "CPUExecutionProvider"}
    return e


def test_summarize_profile_per_operator_type():
    events = [_event("Session", "session_initialization", 0, 50)]
    # run 0 is warm-up; runs 1-3 are kept. MatMul: 2 calls of 30 us; Add: 10 us, but 910 us in run 3 (pre-empted)
    for run, start in enumerate((100, 300, 500, 700)):
        events.append(_event("Session", "model_run", start, 150))
        events.append(_event("Node", "mm1_kernel_time", start + 5, 30, "MatMul"))
        events.append(_event("Node", "mm1_fence_before", start + 5, 0, "MatMul"))  # not a kernel event
        events.append(_event("Node", "mm2_kernel_time", start + 40, 30, "MatMul"))
        events.append(_event("Node", "add_kernel_time", start + 80, 910 if run == 3 else 10, "Add"))
    events.append(_event("Node", "late_kernel_time", 2000, 99, "Gather"))  # outside every run
    s = R.summarize_profile(events, skip_runs=1)
    assert s["runs"] == 3 and s["run_ms"] == pytest.approx(0.150)
    ops = {o["op_type"]: o for o in s["operators"]}
    assert set(ops) == {"MatMul", "Add"}
    assert ops["MatMul"]["ms_per_run"] == pytest.approx(0.060) and ops["MatMul"]["calls_per_run"] == 2
    assert ops["Add"]["ms_per_run"] == pytest.approx(0.010)  # the median ignores the pre-empted run
    assert ops["MatMul"]["share"] == pytest.approx(60 / 70) and s["kernel_ms"] == pytest.approx(0.070)
    assert [o["op_type"] for o in s["operators"]] == ["MatMul", "Add"]
    with pytest.raises(ValueError, match="no model_run"):
        R.summarize_profile(events, skip_runs=4)


def test_profile_a_real_session(tiny_onnx):
    feeds = {
        "input_ids": np.full((1, 16), 7, np.int64),
        "attention_mask": np.ones((1, 16), np.int64),
        "token_type_ids": np.zeros((1, 16), np.int64),
        "not_an_input": np.zeros(1),
    }
    prof = R.profile_operators(tiny_onnx / "int8" / "model.onnx", feeds, threads=1, runs=3, warmup=1)
    assert prof["runs"] == 3 and prof["kernel_ms"] > 0
    assert sum(o["share"] for o in prof["operators"]) == pytest.approx(1.0)
    assert any("MatMul" in o["op_type"] for o in prof["operators"])  # fused int8 products show up


def test_achieved_against_peak():
    count = R.OpCount(1, 64, fp32_ops=2_000_000_000, int8_ops=8_000_000_000)
    a = R.achieved(count, latency_ms=100.0, peak_fp32_gops=100.0, peak_int8_gops=400.0)
    assert a["gops"] == pytest.approx(100.0)  # 10 GOP in 0.1 s
    assert a["ideal_ms"] == pytest.approx(20.0 + 20.0) and a["of_peak"] == pytest.approx(0.4)
    table = R.achieved_table(
        [{"variant": "v", "batch_size": 1, "threads": 1, "latency_ms": 100.0, **R.count_record(count), **a}]
    )
    assert "| `v` | 10 | 80 % | 100.00, 100, 40.0 % |" in table
