"""The int8 accuracy guard: a model made sensitive on purpose loses accuracy under int8, the fallback finds
(by measuring) that the embeddings are to blame, keeps them in float and records it; without fallback steps
the variant stays over budget and the report marks it and never picks it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import export_model, make_tiny_bert, train_on_labels

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.export.config import ExportConfig
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.quantize import QuantContext, quantize
from edgecompress.quantize.config import Int8DynamicConfig, Int8StaticConfig
from edgecompress.quantize.guard import node_groups
from edgecompress.report.tables import build_rows, markdown_table, pick_best


def _trained_classifier(tiny_csv, tmp_path_factory, name: str):
    """The synthetic data and a tiny classifier trained on it (with its tokenizer), for the fixtures below."""
    teacher = tmp_path_factory.mktemp(name)
    make_tiny_bert(teacher, layers=2, hidden=32, heads=4, intermediate=64)
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), max_length=16), 0)
    src = resolve(str(teacher), "teacher.model")
    model, _ = load_classifier(src, data.labels)
    tokenizer = load_tokenizer(src)
    train_on_labels(model, tokenizer, data)
    return data, model, tokenizer


@pytest.fixture(scope="module")
def sensitive(tiny_csv, tmp_path_factory):
    """A trained tiny classifier whose embedding table holds one huge row for a token no input uses:
    the fp32 model never sees it, but int8's per-tensor scale for the table rounds every other row to 0."""
    data, model, tokenizer = _trained_classifier(tiny_csv, tmp_path_factory, "guard_teacher")
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[tokenizer.mask_token_id] = 500.0
    root = tmp_path_factory.mktemp("guard")
    model.save_pretrained(root / "pt")
    tokenizer.save_pretrained(root / "pt")
    export_model(ExportConfig(parity_samples=8), root / "pt", data, root / "fp32", "m-fp32")
    return data, root


def test_node_groups_follow_the_module_tree(sensitive):
    _, root = sensitive
    groups = node_groups(root / "fp32" / "model.onnx", ["MatMul", "Gather", "Gemm", "Unsqueeze"])
    assert set(groups) == {"embeddings", "layer.0", "layer.1", "pooler", "classifier", "other"}
    assert all(n.count("/") == 2 for n in groups["other"])  # e.g. /bert/Unsqueeze
    assert all("/layer.1/" in n for n in groups["layer.1"])
    assert any("word_embeddings" in n for n in groups["embeddings"])


def test_fallback_keeps_the_measured_culprit_in_float(sensitive, tmp_path):
    data, root = sensitive
    cfg = Int8DynamicConfig(max_accuracy_drop=2.0, max_fallback_steps=2)
    info = quantize(cfg, root / "fp32", tmp_path / "q", QuantContext(data, 16, 0, tmp_path / "scratch"))
    guard = info["accuracy_guard"]
    assert guard["fp32_validation_accuracy"] > 0.9, "the fixture model should have learned the task"
    assert 100 * (guard["fp32_validation_accuracy"] - guard["first_validation_accuracy"]) > 10
    # measured, not assumed: keeping the embeddings in float brings the logits back the most
    assert min(guard["sensitivity"], key=guard["sensitivity"].get) == "embeddings"
    assert guard["excluded_groups"][0] == "embeddings" and guard["within_tolerance"]
    assert any("word_embeddings" in n for n in guard["excluded_nodes"])
    assert guard["drop_pts"] <= 2.0 and guard["steps"][0]["excluded_groups"] == ["embeddings"]
    # the shipped file is the one with the float embeddings
    import onnx

    graph = onnx.load(str(tmp_path / "q" / "model.onnx")).graph
    word = next(n for n in graph.node if "word_embeddings" in n.name)
    assert word.op_type == "Gather"
    from transformers import AutoTokenizer

    from edgecompress.export.onnx import ort_logits, ort_session

    texts, _ = data.texts("validation")
    logits = ort_logits(
        ort_session(tmp_path / "q" / "model.onnx"), AutoTokenizer.from_pretrained(root / "fp32"), texts, 16
    )
    assert np.mean(logits.argmax(-1) == np.asarray(data.label_ids("validation"))) == pytest.approx(
        guard["validation_accuracy"]
    )
    assert not list((tmp_path / "scratch").glob("fallback-s[0-9]*")), "sensitivity trials are cleaned up"


def test_static_variant_without_fallback_stays_flagged(sensitive, tmp_path):
    data, root = sensitive
    cfg = Int8StaticConfig(calibration_samples=16, max_accuracy_drop=2.0, max_fallback_steps=0)
    info = quantize(cfg, root / "fp32", tmp_path / "q", QuantContext(data, 16, 0, tmp_path / "scratch"))
    guard = info["accuracy_guard"]
    assert not guard["within_tolerance"] and guard["excluded_groups"] == [] and guard["steps"] == []
    # the report marks it and never picks it as best
    bench = _bench({"m-fp32": {}, "m-int8": {"accuracy_guard": guard}, "m-int8-ok": {}})
    rows = build_rows(bench, "m-fp32")
    flagged = {r["variant"]: r.get("flagged") for r in rows}
    assert flagged == {"m-fp32": False, "m-int8": True, "m-int8-ok": False}
    assert "over tolerance" in markdown_table(rows, "m-fp32")
    best = pick_best(rows, "m-fp32")
    assert best["fastest"] == best["smallest"] == "m-int8-ok" and best["flagged"] == ["m-int8"]


def test_no_guard_means_no_extra_work(sensitive, tmp_path):
    data, root = sensitive
    info = quantize(
        Int8DynamicConfig(), root / "fp32", tmp_path / "q", QuantContext(data, 16, 0, tmp_path / "s")
    )
    assert "accuracy_guard" not in info


def _bench(variants: dict[str, dict]) -> dict:
    """A benchmark record where the flagged variant would otherwise be fastest and smallest."""
    out = {"variants": {}, "latency": []}
    for i, (name, extra) in enumerate(variants.items()):
        out["variants"][name] = {
            "artifact": name,
            "precision": "int8",
            "size_mb": 10.0 - 3 * i if name != "m-int8" else 1.0,
            "params": 100,
            "accuracy": 0.9,
            "f1_macro": 0.9,
            "validation_accuracy": 0.9,
            **extra,
        }
        ms = 10.0 - i if name != "m-int8" else 1.0
        out["latency"].append(
            {
                "variant": name,
                "batch_size": 1,
                "threads": 1,
                "p50_ms": ms,
                "p90_ms": ms,
                "p99_ms": ms,
                "throughput_per_s": 1,
            }
        )
    return out


@pytest.fixture(scope="module")
def outlier_columns(tiny_csv, tmp_path_factory):
    """A trained tiny classifier whose word and position tables carry +M and -M in one column of each
    16-wide block: the fp32 sums (what the model reads) are unchanged, but a 4-bit block scale of M/7 rounds
    every other value of the row to 0 or +-M/7, while 8-bit blocks (M/127) keep them."""
    data, model, tokenizer = _trained_classifier(tiny_csv, tmp_path_factory, "outlier_teacher")
    embeddings = model.bert.embeddings
    with torch.no_grad():
        for column in (0, 16):
            embeddings.word_embeddings.weight[:, column] += 2.0
            embeddings.position_embeddings.weight[:, column] -= 2.0
    root = tmp_path_factory.mktemp("outlier")
    model.save_pretrained(root / "pt")
    tokenizer.save_pretrained(root / "pt")
    export_model(ExportConfig(parity_samples=8), root / "pt", data, root / "fp32", "m-fp32")
    return data, root


def _gather_bits(folder) -> list[int]:
    import onnx

    graph = onnx.load(str(folder / "model.onnx")).graph
    return sorted(
        next(a.i for a in n.attribute if a.name == "bits")
        for n in graph.node
        if n.op_type == "GatherBlockQuantized"
    )


@pytest.mark.parametrize("method", [Int8DynamicConfig, Int8StaticConfig])
def test_block_tables_climb_the_ladder_to_int8(outlier_columns, tmp_path, method):
    """4-bit tables over budget: the guard measures the tables' rungs with the node groups, raises them to
    8-bit blocks (not float, which the budget does not need) and says so in both records."""
    data, root = outlier_columns
    extra = {"calibration_samples": 16} if method is Int8StaticConfig else {}
    cfg = method(
        embeddings="int4", embedding_group_size=16, max_accuracy_drop=2.0, max_fallback_steps=2, **extra
    )
    info = quantize(cfg, root / "fp32", tmp_path / "q", QuantContext(data, 16, 0, tmp_path / "scratch"))
    guard = info["accuracy_guard"]
    assert guard["fp32_validation_accuracy"] > 0.9, "the fixture model should have learned the task"
    assert 100 * (guard["fp32_validation_accuracy"] - guard["first_validation_accuracy"]) > 10
    assert guard["within_tolerance"], f"still {guard['drop_pts']:.1f} points down"
    assert guard["embedding_tables"] == {"first": "int4", "chosen": "int8"}
    assert {"embeddings:int8", "embeddings:fp32"} <= set(guard["sensitivity"])
    assert not [n for n in guard["excluded_nodes"] if n.endswith("_embeddings/Gather")]
    assert guard["steps"][0]["embedding_tables"] == "int8"
    assert info["embedding_tables"]["embeddings"] == "int8" and info["embedding_tables"]["asked"] == "int4"
    assert _gather_bits(tmp_path / "q") == [8, 8, 8]  # word, position, token type: all 8-bit blocks now
    bench = _bench({"m-fp32": {}, "m-int8-ok": {"accuracy_guard": guard}})
    from edgecompress.report.stage import checks_section

    assert "embedding tables: int4 blocks -> int8 blocks" in "\n".join(checks_section(bench))


def test_block_tables_go_to_float_when_int8_is_not_enough(outlier_columns, tmp_path, monkeypatch):
    """Past 8-bit blocks the last rung is float: plain Gathers of the fp32 tables, recorded as fp32. Garbage
    8-bit tables measure as bad as the 4-bit ones, so where the int8 rung ranks among the node groups (ties,
    machine-dependent) decides how many steps reach float: the steps are not limited here."""
    import edgecompress.quantize.nbits as nbits

    real = nbits.quantize_table

    def ruinous(weight, bits, group_size, symmetric):  # every block-quantized table is garbage
        table = real(weight, bits, group_size, symmetric)
        table.scales[:] = 50.0
        return table

    monkeypatch.setattr(nbits, "quantize_table", ruinous)
    data, root = outlier_columns
    cfg = Int8DynamicConfig(
        embeddings="int4", embedding_group_size=16, max_accuracy_drop=2.0, max_fallback_steps=100
    )
    info = quantize(cfg, root / "fp32", tmp_path / "q", QuantContext(data, 16, 0, tmp_path / "scratch"))
    guard = info["accuracy_guard"]
    rungs = [s["embedding_tables"] for s in guard["steps"]]
    assert rungs[0] == "int8" and rungs[-1] == "fp32" and guard["within_tolerance"], rungs
    assert rungs == sorted(rungs, key=["int8", "fp32"].index), "the tables never climb back down"
    assert guard["embedding_tables"]["chosen"] == "fp32" == info["embedding_tables"]["embeddings"]
    assert info["embedding_tables"]["tables"] == {} and _gather_bits(tmp_path / "q") == []
