"""ONNX export with parity, deployable folders, int8 quantization, and predict."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import export_model, make_tiny_bert
from typer.testing import CliRunner

from edgecompress.cli import app
from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.errors import ModelError, StageError
from edgecompress.export.artifact import onnx_size_mb, read_manifest, verify, write_manifest
from edgecompress.export.config import ExportConfig
from edgecompress.export.onnx import ort_logits, ort_session
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.predict import predict
from edgecompress.quantize import QuantContext, quantize
from edgecompress.quantize.config import Int8DynamicConfig, Int8StaticConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tiny_csv, tmp_path_factory):
    # wide enough that weights, not graph overhead, dominate the file (as in real models)
    teacher = tmp_path_factory.mktemp("wide_teacher")
    make_tiny_bert(teacher, layers=2, hidden=64, heads=4, intermediate=256)
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), max_length=16), 0)
    src = resolve(str(teacher), "teacher.model")
    model, _ = load_classifier(src, data.labels)
    root = tmp_path_factory.mktemp("export")
    model.save_pretrained(root / "pt")
    load_tokenizer(src).save_pretrained(root / "pt")
    info = export_model(
        ExportConfig(parity_samples=16, parity_atol=1e-4),
        root / "pt",
        data,
        root / "fp32",
        "m-fp32",
        recipe={"name": "t"},
    )
    return data, root, info


def test_export_parity_and_deployable_folder(exported):
    data, root, info = exported
    folder = root / "fp32"
    assert info["parity_vs_pytorch"]["max_abs_logit_diff"] < 1e-4
    assert info["parity_vs_pytorch"]["argmax_agreement"] == 1.0
    for name in ("model.onnx", "config.json", "tokenizer.json", "manifest.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    manifest = read_manifest(folder)
    assert manifest["files"]["model.onnx"]["bytes"] == (folder / "model.onnx").stat().st_size
    assert manifest["params"] == info["params"] > 0
    assert verify(folder) == []


def test_dynamic_batch_and_sequence_axes(exported):
    _, root, _ = exported
    session = ort_session(root / "fp32" / "model.onnx")
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert all(isinstance(d, str) for d in shapes["input_ids"])  # symbolic: any batch, any length
    for batch, length in ((1, 5), (3, 12)):
        feed = {name: np.ones((batch, length), dtype=np.int64) for name in shapes}
        assert session.run(None, feed)[0].shape == (batch, 2)


def test_parity_failure_fails_the_stage(exported, tmp_path):
    data, root, _ = exported
    with pytest.raises(StageError, match="ONNX logits differ from PyTorch"):
        export_model(
            ExportConfig(parity_samples=8, parity_atol=1e-12), root / "pt", data, tmp_path / "x", "x"
        )


def test_manifest_detects_tampering(exported, tmp_path):
    import shutil

    _, root, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(root / "fp32", copy)
    (copy / "config.json").write_text("{}")
    assert verify(copy) == ["config.json"]


def test_loads_in_optimum_and_transformers_pipeline(exported):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    _, root, _ = exported
    model = ORTModelForSequenceClassification.from_pretrained(root / "fp32")
    classify = pipeline(
        "text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(root / "fp32")
    )
    out = classify(["the movie was great"])
    assert out[0]["label"] in ("negative", "positive") and 0.5 <= out[0]["score"] <= 1.0


@pytest.mark.parametrize(
    "cfg", [Int8DynamicConfig(), Int8StaticConfig(calibration_samples=16)], ids=["dynamic", "static"]
)
def test_int8_variants(exported, cfg, tmp_path):
    data, root, _ = exported
    out = tmp_path / cfg.name
    info = quantize(cfg, root / "fp32", out, QuantContext(data, 16, 0, tmp_path / "scratch"))
    assert info["precision"] == "int8" and info["preset"] in ("avx2", "avx512", "avx512_vnni", "arm64")
    assert onnx_size_mb(out) < 0.6 * onnx_size_mb(root / "fp32")
    graph = onnx.load(str(out / "model.onnx")).graph
    assert {n.op_type for n in graph.node} & {"MatMulInteger", "QLinearMatMul", "DequantizeLinear"}
    sizes = [(int(np.prod(t.dims)), t.data_type) for t in graph.initializer]
    int8_elems = sum(n for n, dtype in sizes if dtype in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8))
    assert int8_elems > 0.5 * sum(n for n, _ in sizes), "most weight elements should be stored as 8-bit"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(root / "fp32")
    texts, _ = data.texts("validation")
    fp32 = ort_logits(ort_session(root / "fp32" / "model.onnx"), tok, texts, 16)
    int8 = ort_logits(ort_session(out / "model.onnx"), tok, texts, 16)
    assert np.mean(fp32.argmax(-1) == int8.argmax(-1)) >= 0.8
    assert not list(tmp_path.glob("*.data")) and not (tmp_path / "augmented_model.onnx").exists()
    write_manifest(out, cfg.name, {}, info)
    assert predict(out, ["boring and dull"])[0]["label"] in ("negative", "positive")


def test_predict_cli(exported):
    _, root, _ = exported
    result = runner.invoke(app, ["predict", str(root / "fp32"), "a great film", "an awful film"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("negative", "positive")
    float(lines[0].split("\t")[1])


def test_predict_errors(tmp_path):
    with pytest.raises(ModelError, match="no model.onnx here"):
        predict(tmp_path, ["x"])
    result = runner.invoke(app, ["predict", str(tmp_path), "x"])
    assert result.exit_code == 2 and result.output.startswith("error: ")
