"""Every kind of variant folder classifies a text far longer than data.max_length through the clients the
README shows, with their default arguments: transformers' pipeline over ORTModelForSequenceClassification,
bare ONNX Runtime with the ``tokenizers`` library, and ``edgecompress predict``. The graph truncates its
inputs itself (export/clip.py), so the long text gets the logits of the same text truncated by the tokenizer.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import FILLER, NEGATIVE, POSITIVE, export_model, make_tiny_bert, synthetic_rows, write_csv

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.export.artifact import write_manifest
from edgecompress.export.clip import PREFIX
from edgecompress.export.config import ExportConfig
from edgecompress.export.onnx import ort_feed, ort_session
from edgecompress.predict import predict
from edgecompress.quantize import QuantContext, quantize
from edgecompress.quantize.config import Int8DynamicConfig, Int8StaticConfig, WeightOnlyConfig

MAX_LENGTH = 16
TRANSFORMER_VARIANTS = (
    "fp32",
    "int8-dynamic",
    "int8-static",
    "int8-dynamic-int4emb",
    "int4",
    "pruned-fp32",
    "pruned-int8-dynamic",
)
CLASSIC_VARIANTS = ("textcnn-fp32", "textcnn-int8-dynamic", "bilstm-fp32")


def thousand_words(seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(FILLER + POSITIVE + NEGATIVE) for _ in range(1000))


def _classic(folder, architecture: str, tokenizer_dir, labels) -> None:
    from transformers import AutoTokenizer

    from edgecompress.modeling.classic import ClassicClassifier, ClassicConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = ClassicClassifier(
        ClassicConfig(
            architecture=architecture,
            vocab_size=len(tokenizer),
            embedding_dim=16,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=8,
            kernel_sizes=[2, 3],
            filters=8,
            dropout=0.0,
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One folder of every kind the pipeline writes, from tiny random models (data.max_length 16)."""
    from transformers import AutoTokenizer

    from edgecompress.modeling.embeddings import trim_positions
    from edgecompress.modeling.loading import load_saved_classifier

    root = tmp_path_factory.mktemp("any_length")
    data = prepare(
        DataConfig(
            source="csv", path=str(write_csv(root / "d.csv", synthetic_rows(120))), max_length=MAX_LENGTH
        ),
        0,
    )
    make_tiny_bert(root / "pt", labels=data.labels, layers=2, with_head=True)
    model = load_saved_classifier(root / "pt")
    assert trim_positions(model, MAX_LENGTH)["positions"] == MAX_LENGTH
    model.save_pretrained(root / "pruned_pt", safe_serialization=True)
    AutoTokenizer.from_pretrained(root / "pt").save_pretrained(root / "pruned_pt")
    _classic(root / "textcnn_pt", "textcnn", root / "pt", data.labels)
    _classic(root / "bilstm_pt", "bilstm", root / "pt", data.labels)

    cfg = ExportConfig(parity_samples=8, parity_atol=1e-4)
    recipe = {"name": "t", "data": {"max_length": MAX_LENGTH}}  # what predict reads from the manifest
    out = {}
    for name, pt in (
        ("fp32", "pt"),
        ("pruned-fp32", "pruned_pt"),
        ("textcnn-fp32", "textcnn_pt"),
        ("bilstm-fp32", "bilstm_pt"),
    ):
        export_model(cfg, root / pt, data, root / name, name, MAX_LENGTH, recipe=recipe)
        out[name] = root / name
    ctx = QuantContext(data, MAX_LENGTH, 0, root / "scratch")
    for name, source, qcfg in (
        ("int8-dynamic", "fp32", Int8DynamicConfig()),
        ("int8-static", "fp32", Int8StaticConfig(calibration_samples=8)),
        ("int8-dynamic-int4emb", "fp32", Int8DynamicConfig(embeddings="int4", embedding_group_size=16)),
        ("int4", "fp32", WeightOnlyConfig(group_size=16)),
        ("pruned-int8-dynamic", "pruned-fp32", Int8DynamicConfig()),
        ("textcnn-int8-dynamic", "textcnn-fp32", Int8DynamicConfig()),
    ):
        write_manifest(root / name, name, recipe, quantize(qcfg, out[source], root / name, ctx))
        out[name] = root / name
    return data, out


def truncated_logits(folder, texts: list[str]) -> np.ndarray:
    """The reference: the folder's graph on the texts as the tokenizer truncates them."""
    from transformers import AutoTokenizer

    session = ort_session(folder / "model.onnx")
    enc = AutoTokenizer.from_pretrained(folder)(
        texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="np"
    )
    assert enc["input_ids"].shape[1] <= MAX_LENGTH
    return session.run(None, ort_feed(session, dict(enc)))[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def labels_of(folder) -> dict[int, str]:
    return {int(k): v for k, v in json.loads((folder / "config.json").read_text())["id2label"].items()}


def test_the_long_text_is_longer_than_every_position_table(folders):
    from transformers import AutoTokenizer

    _, out = folders
    tokens = len(AutoTokenizer.from_pretrained(out["fp32"])(thousand_words(), truncation=False)["input_ids"])
    assert tokens > 1000 > 128  # the tiny BERT's table has 128 rows, the pruned one 16


@pytest.mark.parametrize("variant", TRANSFORMER_VARIANTS)
def test_pipeline_over_ortmodel_with_default_arguments(folders, variant):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    _, out = folders
    folder = out[variant]
    model = ORTModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    clf = pipeline("text-classification", model=model, tokenizer=tokenizer)
    text = thousand_words()
    got = clf(text)
    expected = softmax(truncated_logits(folder, [text]))[0]
    assert got[0]["label"] == labels_of(folder)[int(expected.argmax())]
    assert got[0]["score"] == pytest.approx(float(expected.max()), abs=1e-5)
    # the logits themselves, through ORTModel with the tokenizer's defaults (no truncation)
    enc = tokenizer([text], return_tensors="pt")
    assert enc["input_ids"].shape[1] > 1000
    logits = model(**enc).logits.detach().numpy()
    np.testing.assert_allclose(logits, truncated_logits(folder, [text]), atol=1e-5)


@pytest.mark.parametrize("variant", TRANSFORMER_VARIANTS + CLASSIC_VARIANTS)
def test_bare_onnxruntime_and_tokenizers_as_the_readme_shows(folders, variant):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    _, out = folders
    folder = out[variant]
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.truncation["max_length"] == MAX_LENGTH  # saved truncating at data.max_length
    text = thousand_words()
    enc = tokenizer.encode(text)
    assert len(enc.ids) == MAX_LENGTH
    names = {i.name for i in session.get_inputs()}
    feed = {
        "input_ids": np.array([enc.ids], dtype=np.int64),
        "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
        "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
    }
    logits = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
    np.testing.assert_allclose(logits, truncated_logits(folder, [text]), atol=1e-5)
    # and with truncation switched off, the graph clips the 1,000-word text the same way
    tokenizer.no_truncation()
    tokenizer.enable_padding()
    batch = tokenizer.encode_batch([text, "a dull film"])
    feed = {
        "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
    }
    assert feed["input_ids"].shape[1] > 1000
    logits = session.run(None, {k: v for k, v in feed.items() if k in names})[0]
    np.testing.assert_allclose(logits, truncated_logits(folder, [text, "a dull film"]), atol=1e-5)


@pytest.mark.parametrize("variant", TRANSFORMER_VARIANTS + CLASSIC_VARIANTS)
def test_predict_and_the_readme_transformers_client(folders, variant):
    """``edgecompress predict``, and the README's AutoTokenizer + onnxruntime snippet with the tokenizer's
    defaults (the client the BiLSTM / TextCNN artifacts have instead of ORTModel)."""
    from transformers import AutoTokenizer

    _, out = folders
    folder = out[variant]
    text = thousand_words()
    expected = softmax(truncated_logits(folder, [text, "a dull film"]))
    got = predict(folder, [text, "a dull film"])
    labels = labels_of(folder)
    assert [g["label"] for g in got] == [labels[int(i)] for i in expected.argmax(-1)]
    assert [g["score"] for g in got] == pytest.approx(list(expected.max(-1)), abs=1e-5)
    session = ort_session(folder / "model.onnx")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.model_max_length == MAX_LENGTH
    enc = tokenizer([text, "a dull film"], padding=True, return_tensors="np")
    logits = session.run(None, ort_feed(session, dict(enc)))[0]
    np.testing.assert_allclose(softmax(logits), expected, atol=1e-5)


def test_clip_survives_the_quantizers(folders):
    """The clip is still there and still integer after every quantizer; none of its nodes was quantized."""
    import onnx

    _, out = folders
    for variant, folder in out.items():
        nodes = [n for n in onnx.load(str(folder / "model.onnx")).graph.node if n.name.startswith(PREFIX)]
        ops = {n.op_type for n in nodes}
        assert {"GatherElements", "ReduceSum", "Where", "Range", "Concat"} <= ops, variant
        assert "Gather" not in ops and not ops & {"QuantizeLinear", "DequantizeLinear"}, variant


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batches_and_text_pairs(folders, side):
    """Right- and left-padded batches mixing a long and short texts equal the tokenizer's truncation; a long
    text pair keeps its first N-1 tokens and its last one."""
    from transformers import AutoTokenizer

    _, out = folders
    folder = out["fp32"]
    session = ort_session(folder / "model.onnx")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = side
    texts = [thousand_words(1), "a dull film", thousand_words(2)[:40], "good"]

    def run(**kw):
        enc = tokenizer(texts, padding=True, return_tensors="np", **kw)
        return session.run(None, ort_feed(session, dict(enc)))[0], enc

    clipped, enc = run()
    assert enc["input_ids"].shape[1] > 1000
    truncated, enc = run(truncation=True, max_length=MAX_LENGTH)
    assert enc["input_ids"].shape[1] == MAX_LENGTH
    np.testing.assert_allclose(clipped, truncated, atol=1e-5)

    pair = tokenizer([thousand_words(3)], ["a great film"], return_tensors="np")
    kept = {k: np.concatenate([v[:, : MAX_LENGTH - 1], v[:, -1:]], axis=1) for k, v in pair.items()}
    assert kept["token_type_ids"][0, -1] == 1  # the second text's [SEP]
    np.testing.assert_allclose(
        session.run(None, ort_feed(session, dict(pair)))[0],
        session.run(None, ort_feed(session, kept))[0],
        atol=1e-5,
    )


def test_export_records_the_long_input_check(folders):
    _, out = folders
    long_input = json.loads((out["pruned-fp32"] / "manifest.json").read_text())["parity_vs_pytorch"][
        "long_input"
    ]
    assert long_input["tokens"] > 2 * MAX_LENGTH and long_input["max_abs_logit_diff_vs_truncated"] < 1e-4


def test_mobile_ort_file_takes_any_length(folders, tmp_path):
    """The .ort conversion keeps the clip: the mobile file also classifies the 1,000-word text."""
    from transformers import AutoTokenizer

    from edgecompress.mobile.config import MobileConfig
    from edgecompress.mobile.stage import convert_to_ort

    _, out = folders
    folder = out["pruned-int8-dynamic"]
    ort_path = convert_to_ort(folder / "model.onnx", tmp_path, MobileConfig())
    session = ort_session(ort_path)
    enc = AutoTokenizer.from_pretrained(folder)([thousand_words()], return_tensors="np")
    np.testing.assert_allclose(
        session.run(None, ort_feed(session, dict(enc)))[0],
        truncated_logits(folder, [thousand_words()]),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "benchmark, field",
    [
        ({"sequence_length": 100000}, "benchmark.sequence_length: 100000 tokens"),
        ({"mobile": {"short_length": 65}}, "benchmark.mobile.short_length: 65 tokens"),
        ({"mobile": {"typical_length": 100}}, "benchmark.mobile.typical_length: 100 tokens"),
    ],
)
def test_timed_lengths_beyond_max_length_are_recipe_errors(tmp_path, benchmark, field):
    """The graph truncates to data.max_length: a longer timed input would time a truncated one."""
    import yaml
    from typer.testing import CliRunner

    from edgecompress.cli import app

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "data": {"max_length": 64}, "benchmark": benchmark}))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: {field} is more than data.max_length (64)")
    assert len(result.output.strip().splitlines()) == 1
    ok = {"name": "x", "data": {"max_length": 64}, "benchmark": {"sequence_length": 64}}
    path.write_text(yaml.safe_dump(ok))
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0


def test_clip_without_an_attention_mask_keeps_the_first_and_last_tokens():
    """A graph that takes only input_ids: every token is real, so a row longer than N keeps its first N-1
    tokens and its last one; the clip is added once."""
    import onnx
    from onnx import TensorProto, helper

    from edgecompress.export.clip import add_input_clip

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_ids"], ["ids"])],
        "ids_only",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert add_input_clip(model, 8) == ["input_ids"] and add_input_clip(model, 8) == []
    onnx.checker.check_model(model)
    session = ort_session(model.SerializeToString())
    ids = np.arange(80, dtype=np.int64).reshape(2, 40)
    np.testing.assert_array_equal(session.run(None, {"input_ids": ids})[0], np.c_[ids[:, :7], ids[:, -1]])
    short = ids[:, :5]
    np.testing.assert_array_equal(session.run(None, {"input_ids": short})[0], short)
