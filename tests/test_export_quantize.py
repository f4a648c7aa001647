"""ONNX export with parity, deployable folders, int8 quantization, and predict."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import export_model, make_tiny_bert, train_on_labels
from onnx import numpy_helper
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
    tokenizer = load_tokenizer(src)
    train_on_labels(model, tokenizer, data)  # so that a test can name the label each text must get
    root = tmp_path_factory.mktemp("export")
    model.save_pretrained(root / "pt")
    tokenizer.save_pretrained(root / "pt")
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
    assert manifest["params"] == info["params"] == sum(p.numel() for p in _pytorch(root).parameters())
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
    texts = ["the movie was great", "a dull and boring plot"]
    out = classify(texts)
    assert [o["label"] for o in out] == ["positive", "negative"]  # the trained fixture reads the word
    expected = _pytorch_probabilities(root, texts).max(-1)
    assert [o["score"] for o in out] == pytest.approx(expected.tolist(), abs=1e-5)  # ONNX = PyTorch


def _pytorch(root):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(root / "pt").eval()


def _pytorch_probabilities(root, texts: list[str]) -> np.ndarray:
    """The fixture's PyTorch model (not the artifact under test) on ``texts``: softmax probabilities."""
    import torch
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(root / "pt")(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(_pytorch(root)(**enc).logits, -1).numpy()


# int8 weights and activations (8 bits over each tensor's range) on logits of about +-4.5: 0.009 measured,
# dynamic and static alike; a quantization moves them at least a twentieth of this, a sound one no more
INT8_LOGIT_ERROR = 0.05


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
    assert np.array_equal(fp32.argmax(-1), int8.argmax(-1))
    assert INT8_LOGIT_ERROR / 20 < np.abs(fp32 - int8).max() < INT8_LOGIT_ERROR
    assert not list(tmp_path.glob("*.data")) and not (tmp_path / "augmented_model.onnx").exists()
    write_manifest(out, cfg.name, {}, info)
    (result,) = predict(out, ["boring and dull"])
    assert result["label"] == "negative"
    assert result["score"] == pytest.approx(_pytorch_probabilities(root, ["boring and dull"]).max(), abs=1e-3)


def test_predict_cli(exported):
    _, root, _ = exported
    result = runner.invoke(app, ["predict", str(root / "fp32"), "a great film", "an awful film"])
    assert result.exit_code == 0, result.output
    fields = [line.split("\t") for line in result.output.strip().splitlines()]
    assert [(f[0], f[2]) for f in fields] == [("positive", "a great film"), ("negative", "an awful film")]
    expected = _pytorch_probabilities(root, ["a great film", "an awful film"]).max(-1)
    assert [float(f[1]) for f in fields] == pytest.approx(expected.tolist(), abs=1e-4)  # printed to 4 places


def test_predict_errors(tmp_path):
    with pytest.raises(ModelError, match="no model.onnx here"):
        predict(tmp_path, ["x"])
    result = runner.invoke(app, ["predict", str(tmp_path), "x"])
    assert result.exit_code == 2 and result.output.startswith("error: ")


@pytest.mark.parametrize(
    ("preset", "asked", "seven_bit"),
    [("avx2", None, True), ("avx512", None, True), ("avx512_vnni", None, False), ("arm64", True, True)],
)
def test_int8_weights_are_7_bit_where_the_kernels_saturate(exported, tmp_path, preset, asked, seven_bit):
    """ONNX Runtime's u8s8 kernels without VNNI (avx2, avx512) saturate 16-bit pair sums: 7-bit weights by
    default there (reduce_range), 8-bit elsewhere, and what the recipe says when it says it."""
    data, root, _ = exported
    cfg = Int8DynamicConfig(preset=preset, reduce_range=asked)
    info = quantize(cfg, root / "fp32", tmp_path / "q", QuantContext(data, 16, 0, tmp_path / "scratch"))
    assert info["reduce_range"] is seven_bit
    graph = onnx.load(str(tmp_path / "q" / "model.onnx")).graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.int32) for t in graph.initializer}
    # the linear layers' integer weights less their zero points (the embedding tables are gathered, not multiplied)
    levels = [
        np.abs(values - inits[name.removesuffix("_quantized") + "_zero_point"])
        for name, values in inits.items()
        if name.endswith("_quantized") and values.ndim == 2 and "embeddings" not in name
    ]
    assert levels
    largest = max(int(v.max()) for v in levels)
    assert (largest <= 64) if seven_bit else (largest > 64)
