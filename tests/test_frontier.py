"""The compression frontier's pieces: factorised and block-quantized embeddings, narrower students initialised
from the teacher, FFN widths in whole groups, and the frontier plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import export_model, make_tiny_bert, synthetic_rows, train_on_labels, write_csv

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.export.config import ExportConfig
from edgecompress.export.onnx import ort_logits, ort_session, torch_logits
from edgecompress.modeling.embeddings import FactorizedEmbedding, factorize_word_embeddings, trim_positions
from edgecompress.modeling.loading import load_saved_classifier
from edgecompress.quantize import QuantContext, quantize
from edgecompress.quantize.config import Int8DynamicConfig, WeightOnlyConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = write_csv(tmp_path_factory.mktemp("d") / "d.csv", synthetic_rows(120))
    return prepare(DataConfig(source="csv", path=str(path), max_length=16), 0)


@pytest.fixture(scope="module")
def factorized(tmp_path_factory, data):
    """A tiny classifier that learnt the task, then given a rank-16 word table and a 16-row position table,
    saved and exported."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("factorized")
    make_tiny_bert(root / "full", with_head=True)
    model = load_saved_classifier(root / "full")
    train_on_labels(model, AutoTokenizer.from_pretrained(root / "full"), data)  # labels a test can name
    record = factorize_word_embeddings(model, rank=16)
    record.update(trim_positions(model, 16))
    model.save_pretrained(root / "pt", safe_serialization=True)
    AutoTokenizer.from_pretrained(root / "full").save_pretrained(root / "pt")
    export_model(
        ExportConfig(parity_samples=16, parity_atol=1e-4), root / "pt", data, root / "fp32", "f-fp32"
    )
    return root, record


def test_factorised_embeddings_start_from_the_svd_and_reload(factorized, data):
    from transformers import AutoTokenizer

    root, record = factorized
    assert record["rank"] == 16 and record["table"][1] == 16 and 0 < record["svd_energy_kept"] < 1
    assert record == {**record, "positions": 16, "positions_before": 128}
    back = load_saved_classifier(root / "pt")
    emb = back.get_input_embeddings()
    assert isinstance(emb, FactorizedEmbedding) and emb.table.weight.shape[1] == 16
    assert back.base_model.embeddings.position_embeddings.num_embeddings == 16
    tok = AutoTokenizer.from_pretrained(root / "pt")
    texts, _ = data.texts("validation")
    onnx = ort_logits(ort_session(root / "fp32" / "model.onnx"), tok, texts, 16)
    np.testing.assert_allclose(onnx, torch_logits(back, tok, texts, 16), atol=1e-4)


def test_full_rank_factorisation_keeps_the_function(tmp_path):
    make_tiny_bert(tmp_path / "m", with_head=True, hidden=32)
    model = load_saved_classifier(tmp_path / "m")
    ids = torch.randint(7, 60, (2, 9))
    before = model(input_ids=ids).logits
    factorize_word_embeddings(model, rank=31)  # all but the smallest singular direction
    after = model(input_ids=ids).logits
    assert torch.allclose(before, after, atol=5e-2)
    with pytest.raises(ValueError, match="rank 32 must be between 1 and the hidden width 32"):
        factorize_word_embeddings(load_saved_classifier(tmp_path / "m"), rank=32)


def test_factorised_model_quantizes_and_loads_in_optimum(factorized, data, tmp_path):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    root, _ = factorized
    ctx = QuantContext(data, 16, 0, tmp_path / "scratch", source_model=root / "pt")
    info = quantize(
        Int8DynamicConfig(embeddings="int4", embedding_group_size=16), root / "fp32", tmp_path / "q", ctx
    )
    assert info["embedding_tables"]["embeddings"] == "int4"
    assert sorted(info["embedding_tables"]["tables"].values()) == [
        [2, 32],
        [16, 32],
        [len(data_vocab(root)), 16],
    ]
    clf = pipeline(
        "text-classification",
        model=ORTModelForSequenceClassification.from_pretrained(tmp_path / "q"),
        tokenizer=AutoTokenizer.from_pretrained(tmp_path / "q"),
    )
    texts = ["the film was great", "a dull and boring plot"]
    fp32 = ort_logits(
        ort_session(root / "fp32" / "model.onnx"), AutoTokenizer.from_pretrained(root / "pt"), texts, 16
    )
    fp32_probs = np.exp(fp32) / np.exp(fp32).sum(-1, keepdims=True)
    assert [data.labels[i] for i in fp32.argmax(-1)] == ["positive", "negative"]  # the factorised model reads
    out = clf(texts)
    assert [o["label"] for o in out] == ["positive", "negative"]
    assert [o["score"] for o in out] == pytest.approx(fp32_probs.max(-1).tolist(), abs=0.01)
    # the scores saturate near 1: the logits say more (about +-3; measured 0.004 from fp32)
    tok = AutoTokenizer.from_pretrained(root / "pt")
    val, _ = data.texts("validation")
    fp32_val = ort_logits(ort_session(root / "fp32" / "model.onnx"), tok, val, 16)
    int8_val = ort_logits(ort_session(tmp_path / "q" / "model.onnx"), tok, val, 16)
    assert np.abs(fp32_val - int8_val).max() < 0.05
    int4 = quantize(WeightOnlyConfig(group_size=16, embeddings="int4"), root / "fp32", tmp_path / "w", ctx)
    assert int4["inc_vs_onnx"]["argmax_agreement"] == 1.0
    assert "bert.embeddings.word_embeddings.table" in int4["quantized_embeddings"]


def data_vocab(root) -> dict:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(root / "pt").get_vocab()


def _block_quantized_tables(fp32_path, quantized_path) -> dict:
    """``{table: (fp32 table, rows, block size, bits)}`` for every GatherBlockQuantized node of the quantized
    graph: ``rows`` are what ONNX Runtime returns for every id, the node (and its Cast) run alone; the fp32
    table is the one the float graph's Gather with the same output reads."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    fp32, quantized = onnx.load(str(fp32_path)).graph, onnx.load(str(quantized_path)).graph
    fp32_inits = {i.name: i for i in fp32.initializer}
    q_inits = {i.name: i for i in quantized.initializer}
    tables = {}
    for node in (n for n in quantized.node if n.op_type == "GatherBlockQuantized"):
        alone = helper.make_node(
            node.op_type, [node.input[0], "ids", *node.input[2:]], node.output, domain=node.domain
        )
        alone.attribute.extend(node.attribute)
        nodes, result = [alone], node.output[0]
        cast = next((n for n in quantized.node if n.op_type == "Cast" and n.input[0] == result), None)
        if cast is not None:  # fp16 scales: the rows come back as fp16 and are cast up
            nodes.append(cast)
            result = cast.output[0]
        gather = next(n for n in fp32.node if n.op_type == "Gather" and n.output[0] == result)
        table = numpy_helper.to_array(fp32_inits[gather.input[0]])
        graph = helper.make_graph(
            nodes,
            "table",
            [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
            [helper.make_tensor_value_info(result, TensorProto.FLOAT, None)],
            [q_inits[name] for name in node.input if name in q_inits],
        )
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = 8
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        rows = session.run(None, {"ids": np.arange(table.shape[0], dtype=np.int64)})[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        tables[gather.input[0]] = (table, rows, attrs["block_size"], attrs["bits"])
    return tables


def test_int8_variant_with_block_quantized_embeddings(tmp_path, data):
    """Every row of every table comes back within half a quantization step of its block (round to nearest at the
    given bits: the step is the block's largest magnitude over 2**(bits-1) - 1), plus fp16 rounding of the scales
    and rows (2**-11 of that magnitude each, allowed twice over); the logits of a model that learnt the task stay
    as close to fp32 as with Optimum's own table."""
    import onnx
    from transformers import AutoTokenizer

    make_tiny_bert(tmp_path / "pt", with_head=True, hidden=64, heads=4, intermediate=128)
    model = load_saved_classifier(tmp_path / "pt")
    train_on_labels(model, AutoTokenizer.from_pretrained(tmp_path / "pt"), data)
    model.save_pretrained(tmp_path / "pt")
    export_model(ExportConfig(parity_samples=8), tmp_path / "pt", data, tmp_path / "fp32", "m-fp32")
    tok = AutoTokenizer.from_pretrained(tmp_path / "fp32")
    texts, _ = data.texts("validation")
    reference = ort_logits(ort_session(tmp_path / "fp32" / "model.onnx"), tok, texts, 16)
    sizes = {}
    for name, emb in (("per_tensor", "per_tensor"), ("int8", "int8"), ("int4", "int4")):
        cfg = Int8DynamicConfig(embeddings=emb, embedding_group_size=16)
        quantize(cfg, tmp_path / "fp32", tmp_path / name, QuantContext(data, 16, 0, tmp_path / f"s{name}"))
        graph = onnx.load(str(tmp_path / name / "model.onnx")).graph
        ops = [n.op_type for n in graph.node]
        assert ("GatherBlockQuantized" in ops) == (emb != "per_tensor")
        sizes[name] = (tmp_path / name / "model.onnx").stat().st_size
        if emb != "per_tensor":
            tables = _block_quantized_tables(tmp_path / "fp32" / "model.onnx", tmp_path / name / "model.onnx")
            assert len(tables) == 3  # word, position and token-type tables
            for table, rows, block, bits in tables.values():
                assert (block, bits) == (16, int(emb[3:]))
                largest = np.repeat(np.abs(table).reshape(len(table), -1, block).max(-1), block, axis=1)
                bound = largest / (2**bits - 2) + 2**-9 * largest
                assert np.all(np.abs(rows - table) <= bound), (name, np.max(np.abs(rows - table) - bound))
        logits = ort_logits(ort_session(tmp_path / name / "model.onnx"), tok, texts, 16)
        assert np.array_equal(logits.argmax(-1), reference.argmax(-1))
        assert np.abs(logits - reference).max() < 0.02  # logits about +-3.5; measured 0.003 for all three
    assert sizes["int4"] < sizes["per_tensor"]  # half the bytes of the word table, and then some


def test_narrow_student_from_the_teacher(tmp_path, data):
    """A student of half the width starts from the teacher seen through its principal directions: much closer
    to the teacher than a random student of the same shape."""
    from edgecompress.distill.config import StudentConfig
    from edgecompress.modeling.student import build_student
    from edgecompress.training.batching import EncodedSplit, make_loader

    make_tiny_bert(tmp_path / "t", with_head=True, hidden=64, heads=4, intermediate=128, layers=4)
    teacher = load_saved_classifier(tmp_path / "t").eval()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "t")
    split = EncodedSplit(tok, data.splits["train"], data.label_ids("train"), 16)
    batches = list(make_loader(split, 16, False, 0))
    cfg = StudentConfig(
        num_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, width_init="teacher"
    )
    student, built = build_student(teacher, cfg, data.labels, batches)
    assert built["init_layers"] == [0, 3] and 0.3 < built["second_moment_kept"] <= 1
    assert (
        student.config.hidden_size == 32
        and student.base_model.encoder.layer[0].attention.self.attention_head_size == 16
    )
    random_student, _ = build_student(teacher, cfg.model_copy(update={"width_init": "random"}), data.labels)
    texts, _ = data.texts("validation")
    t = torch_logits(teacher, tok, texts, 16)
    gap = np.abs(torch_logits(student, tok, texts, 16) - t).mean()
    random_gap = np.abs(torch_logits(random_student, tok, texts, 16) - t).mean()
    assert student(**tok(["a fine film"], return_tensors="pt")).logits.shape == (1, 2)
    assert gap < random_gap, (gap, random_gap)


def test_narrow_student_needs_the_teachers_head_size():
    from transformers import BertConfig

    from edgecompress.distill.config import StudentConfig
    from edgecompress.errors import RecipeError
    from edgecompress.modeling.student import student_config

    teacher = BertConfig(hidden_size=384, num_attention_heads=12, intermediate_size=1536, num_hidden_layers=6)
    ok, init = student_config(
        teacher, StudentConfig(hidden_size=256, num_attention_heads=8, width_init="teacher")
    )
    assert ok.hidden_size == 256 and init == [0, 2, 5]
    with pytest.raises(
        RecipeError, match="student.num_attention_heads: width_init teacher keeps the teacher's head size 32"
    ):
        student_config(teacher, StudentConfig(hidden_size=192, num_attention_heads=12, width_init="teacher"))


def test_ffn_widths_in_whole_groups():
    from edgecompress.prune.config import FfnPruningConfig
    from edgecompress.prune.select import select_units

    scores = [np.arange(100, dtype=float), np.arange(100, dtype=float)[::-1]]
    out = select_units(scores, FfnPruningConfig(fraction=0.4, multiple_of=32))
    assert [100 - len(v) for v in out.values()] == [32, 32]  # 60 kept, rounded down to 32
    assert out[0] == list(range(68))  # the least important go first
    plain = select_units(scores, FfnPruningConfig(fraction=0.4))
    assert [100 - len(v) for v in plain.values()] == [60, 60]


def test_pareto_front_and_the_plot(tmp_path):
    from edgecompress.pareto import pareto_front
    from edgecompress.report.plots import accuracy_vs_latency

    rows = [
        {"variant": "teacher", "latency_ms_p50": 16.0, "accuracy": 0.83, "size_mb": 91},
        {"variant": "student", "latency_ms_p50": 8.0, "accuracy": 0.84, "size_mb": 70},
        {"variant": "int8", "latency_ms_p50": 3.6, "accuracy": 0.839, "size_mb": 17},
        {"variant": "int8-arm", "latency_ms_p50": 3.6, "accuracy": 0.839, "size_mb": 17},
        {"variant": "tiny", "latency_ms_p50": 2.0, "accuracy": 0.80, "size_mb": 4},
        {"variant": "bad", "latency_ms_p50": 5.0, "accuracy": 0.79, "size_mb": 20},
    ]
    assert [p["variant"] for p in pareto_front(rows)] == ["tiny", "int8", "student"]
    accuracy_vs_latency(rows, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    assert json.dumps(rows)  # plotting does not change the rows
