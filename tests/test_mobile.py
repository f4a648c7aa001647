"""The mobile-class target: .ort conversion with ONNX Runtime's tools, its usability check, the mobile
benchmark profile (batch 1, 1 thread, short and typical lengths) and peak memory in a fresh process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import export_model, make_tiny_bert, stage_context

from edgecompress.benchmark.config import MobileProfile
from edgecompress.benchmark.memory import peak_rss
from edgecompress.benchmark.stage import mobile_profile
from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.errors import RecipeError
from edgecompress.export.config import ExportConfig
from edgecompress.mobile import stage as mobile_stage
from edgecompress.mobile.config import MobileConfig
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.quantize import QuantContext, quantize
from edgecompress.quantize.config import WeightOnlyConfig
from edgecompress.recipe import recipe_from_dict
from edgecompress.report.tables import build_rows, mobile_table


@pytest.fixture(scope="module")
def variants(tiny_csv, tmp_path_factory):
    """An fp32 variant and its 4-bit weight-only variant (MatMulNBits + GatherBlockQuantized)."""
    teacher = tmp_path_factory.mktemp("mobile_teacher")
    make_tiny_bert(teacher, layers=2, hidden=32, heads=4, intermediate=64)
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), max_length=16), 0)
    src = resolve(str(teacher), "teacher.model")
    model, _ = load_classifier(src, data.labels)
    root = tmp_path_factory.mktemp("mobile")
    model.save_pretrained(root / "pt")
    load_tokenizer(src).save_pretrained(root / "pt")
    export_model(ExportConfig(parity_samples=8), root / "pt", data, root / "m-fp32", "m-fp32")
    ctx = QuantContext(data, 16, 0, root / "scratch")
    quantize(WeightOnlyConfig(group_size=16), root / "m-fp32", root / "m-int4", ctx)
    return data, {"m-fp32": root / "m-fp32", "m-int4": root / "m-int4"}


def _mobile_run(data, variant_dir, out):
    out.mkdir()
    return mobile_stage.run(
        MobileConfig(variants=[variant_dir.name], check_samples=16),
        mobile_stage.MobileInputs(variant_dir),
        stage_context(data),
        out,
    )


def _no_ort_files_in_this_process(monkeypatch):
    """onnxruntime in the test process refuses .ort files: a run check done here instead of in a fresh
    process fails."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    def session(model, *args, **kwargs):
        assert not str(model).endswith(".ort"), "the .ort file was loaded in the calling process"
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)


def test_ort_conversion_loads_runs_and_is_checked(variants, tmp_path, monkeypatch):
    data, folders = variants
    _no_ort_files_in_this_process(monkeypatch)
    out = tmp_path / "ort"
    record = _mobile_run(data, folders["m-int4"], out)
    assert (out / "model.ort").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads((out / "mobile.json").read_text()) == record
    assert record["loads_and_runs"] is True and record["vs_onnx"]["argmax_agreement"] == 1.0
    assert record["vs_onnx"]["samples"] == 16 and record["vs_onnx"]["max_abs_logit_diff"] < 1e-4
    assert record["run_check"].startswith("model.ort loaded as ORT format in a fresh process")
    assert {"MatMulNBits", "GatherBlockQuantized"} <= set(record["required_operators"]["com.microsoft"])
    eps = record["usability"]["execution_providers"]
    assert set(eps) == {"NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram"}
    assert all(v["as_is"] in ("YES", "NO", "MAYBE") for v in eps.values())
    assert record["peak_rss"]["peak_mb"] > record["peak_rss"]["baseline_mb"] > 0


def test_an_ort_file_with_other_logits_fails_the_run_check(variants, tmp_path, monkeypatch):
    """The converter handed the fp32 graph for the 4-bit variant: the .ort file loads and runs, but computes
    another function, so ``loads_and_runs`` is false and the comparison says by how much."""
    data, folders = variants
    real = mobile_stage.convert_to_ort
    monkeypatch.setattr(
        mobile_stage,
        "convert_to_ort",
        lambda _path, out, cfg: real(folders["m-fp32"] / "model.onnx", out, cfg),
    )
    record = _mobile_run(data, folders["m-int4"], tmp_path / "ort")
    assert record["loads_and_runs"] is False and record["vs_onnx"]["max_abs_logit_diff"] > 1e-4
    assert record["vs_onnx"]["atol"] == 1e-4


def test_an_ort_file_that_does_not_load_is_a_stage_error(tmp_path):
    from edgecompress.errors import StageError

    bad = tmp_path / "model.ort"
    bad.write_bytes(b"not a model")
    feed = {"input_ids": np.ones((1, 4), np.int64)}
    with pytest.raises(StageError, match="does not load and run in a fresh ONNX Runtime process"):
        mobile_stage.run_in_fresh_process(bad, feed)


def test_ort_conversion_failure_is_a_stage_error(tmp_path):
    from edgecompress.errors import StageError

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    (tmp_path / "out").mkdir()
    with pytest.raises(StageError, match="could not convert the model to .ort"):
        mobile_stage.convert_to_ort(bad, tmp_path / "out", MobileConfig())


def _model_with_weights(path, megabytes: int):
    """An ONNX model that holds ``megabytes`` of float32 weights and adds their sum to its input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones(megabytes * 250_000, np.float32), "W")
    nodes = [
        helper.make_node("ReduceSum", ["W"], ["S"], keepdims=0),
        helper.make_node("Add", ["X", "S"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_peak_memory_is_measured_in_a_fresh_process(variants, tmp_path):
    """A model with 40 MB of weights costs at least those 40 MB over the baseline of a process that imported
    only numpy and onnxruntime (this test process, with torch, is far bigger)."""
    _, folders = variants
    ones = np.ones((1, 8), np.int64)
    feed = {"input_ids": ones, "attention_mask": ones, "token_type_ids": 0 * ones, "unused": np.ones(1)}
    tiny = peak_rss(folders["m-fp32"] / "model.onnx", feed)
    big = peak_rss(_model_with_weights(tmp_path / "big.onnx", 40), {"X": np.ones(1, np.float32)})
    for mem in (tiny, big):
        assert 10 < mem["baseline_mb"] < 150  # figures rounded to 0.1 MB each: their difference to 0.1
        assert mem["model_mb"] == pytest.approx(mem["peak_mb"] - mem["baseline_mb"], abs=0.11)
    assert big["model_mb"] >= 40 > tiny["model_mb"]


def test_mobile_profile_rows_and_report(variants):
    from transformers import AutoTokenizer

    data, folders = variants
    tokenizers = {n: AutoTokenizer.from_pretrained(f) for n, f in folders.items()}
    profile = mobile_profile(
        MobileProfile(short_length=4, runs=3, warmup=1), folders, tokenizers, stage_context(data)
    )
    assert profile["short_length"] == 4 and 4 < profile["typical_length"] <= 16
    lengths = {
        (r["variant"], r["sequence_length"], r["batch_size"], r["threads"]) for r in profile["latency"]
    }
    assert lengths == {(v, n, 1, 1) for v in folders for n in (4, profile["typical_length"])}
    assert set(profile["memory"]) == set(folders)
    bench = {
        "variants": {
            n: {"artifact": n, "size_mb": 1.0, "params": 1, "accuracy": 0.5, "f1_macro": 0.5} for n in folders
        },
        "latency": [
            {**r, "p90_ms": 1, "p99_ms": 1, "throughput_per_s": 1}
            for r in profile["latency"]
            if r["sequence_length"] == 4
        ],
        "mobile": profile,
    }
    rows = build_rows(bench, "m-fp32")
    for r in rows:  # the profile's own figures, not others
        memory = profile["memory"][r["variant"]]
        assert (r["peak_rss_mb"], r["model_rss_mb"]) == (memory["peak_mb"], memory["model_mb"])
        typical = next(
            lat["p50_ms"]
            for lat in profile["latency"]
            if lat["variant"] == r["variant"] and lat["sequence_length"] == profile["typical_length"]
        )
        assert r[f"mobile_p50_ms_L{profile['typical_length']}"] == typical
    table = mobile_table(rows)
    assert "p50 ms, 4 tokens" in table and "peak RSS MB" in table and table.count("\n") == 3


def test_mobile_variants_must_exist():
    recipe = recipe_from_dict(
        {
            "name": "x",
            "quantization": {"variants": [{"method": "weight_only", "name": "int4"}]},
            "mobile": {"variants": ["student-int4", "student-fp32"]},
        }
    )
    assert recipe.mobile.variants == ["student-int4", "student-fp32"]
    with pytest.raises(RecipeError, match="mobile.variants.0: no variant 'student-int3'"):
        recipe_from_dict({"name": "x", "mobile": {"variants": ["student-int3"]}}, source="r.yaml")
