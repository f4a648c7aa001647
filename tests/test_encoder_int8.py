"""int8 leaves ModernBERT's rotary-angle MatMuls float (docs/design/encoders.md §0.5: quantizing inv_freq x
positions puts the angles 0.15 rad off at 77 tokens, and random-weight logits barely notice). A tiny random
ModernBERT (2 layers, width 32) exported through edgecompress and quantized with Optimum's dynamic int8."""

from __future__ import annotations

import copy

import onnx
import torch
from onnx import helper

from edgecompress.quantize.int8 import keep_float_nodes


def test_keep_float_nodes_names_only_the_rotary_matmuls():
    names = [
        "/model/layers.0/attn/rotary_emb/MatMul",
        "/model/layers.1/attn/rotary_emb/MatMul_1",
        "/model/layers.0/attn/Wqkv/MatMul",
        "/bert/encoder/layer.0/attention/self/MatMul",
    ]
    nodes = [helper.make_node("MatMul", ["a", "b"], [f"y{i}"], name=n) for i, n in enumerate(names)]
    graph = helper.make_graph(nodes, "g", [], [])
    assert keep_float_nodes(graph) == names[:2]


def test_modernbert_dynamic_int8_keeps_the_rotary_angles_float(
    tmp_path, tiny_teacher, one_thread, monkeypatch
):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from edgecompress.export.onnx import export
    from edgecompress.quantize.config import Int8DynamicConfig
    from edgecompress.quantize.int8 import _qconfig, _quantize

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    cfg = AutoConfig.for_model(
        "modernbert",
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        reference_compile=False,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(copy.deepcopy(cfg), attn_implementation="eager")
    fp32, int8 = tmp_path / "fp32", tmp_path / "int8"
    export(model.eval(), tokenizer, fp32, 17, 32)
    rotary = keep_float_nodes(onnx.load(str(fp32 / "model.onnx")).graph)
    assert rotary and all("rotary_emb" in n for n in rotary)
    _, qconfig = _qconfig(Int8DynamicConfig(), is_static=False)
    assert not qconfig.nodes_to_exclude
    _quantize(fp32, int8, qconfig)
    nodes = {n.name: n.op_type for n in onnx.load(str(int8 / "model.onnx")).graph.node}
    assert all(nodes[n] == "MatMul" for n in rotary)  # left float
    assert any(op == "MatMulInteger" for op in nodes.values())  # the rest is int8
    # without the exclusion Optimum quantizes them too (what the exclusion is for)
    monkeypatch.setattr("edgecompress.quantize.int8.keep_float_nodes", lambda graph: [])
    _quantize(fp32, tmp_path / "all", qconfig)
    nodes = {n.name: n.op_type for n in onnx.load(str(tmp_path / "all" / "model.onnx")).graph.node}
    assert all(nodes.get(n) != "MatMul" for n in rotary)


def test_mpnet_block_tables_leave_the_relative_position_bias_to_int8(tmp_path, tiny_teacher, one_thread):
    """MPNet's relative position bias is an embedding of buckets x heads (32 x 4 here): narrower than one block
    of 16, it is left to Optimum's int8 Gather, while the word and position tables become 4-bit blocks. Before,
    the whole variant failed ("does not divide an embedding width of 6" on the MPNet recipe)."""
    import numpy as np
    import onnxruntime as ort
    from test_encoder_adapters import config_for_tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgecompress.export.onnx import export
    from edgecompress.quantize.config import Int8DynamicConfig
    from edgecompress.quantize.int8 import _qconfig, _quantize, block_tables

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    cfg = config_for_tokenizer("mpnet", tokenizer, num_labels=2)  # 4 heads, 32 relative buckets
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(cfg)
    fp32, out = tmp_path / "fp32", tmp_path / "int4emb"
    export(model.eval(), tokenizer, fp32, 17, 32)
    qcfg = Int8DynamicConfig(embeddings="int4", embedding_group_size=16)
    blocks = block_tables(qcfg, fp32)
    assert [shape for _, shape in blocks.narrow] == [(32, 4)]
    assert sorted(shape[1] for _, shape in blocks.shapes) == [32, 32]  # word and position tables
    _, qconfig = _qconfig(qcfg, is_static=False)
    _quantize(fp32, out, qconfig, blocks=blocks)
    ops = [n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node]
    assert ops.count("GatherBlockQuantized") == 2
    assert "narrower_than_a_block" in blocks.record({})
    ids = np.array([[tokenizer.cls_token_id, 5, 6, 7, tokenizer.sep_token_id]], np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    logits = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, feed
    )[0]
    assert logits.shape == (1, 2) and np.isfinite(logits).all()


def test_a_table_a_block_wide_that_the_block_does_not_divide_is_still_an_error():
    import numpy as np
    import pytest
    from onnx import TensorProto, numpy_helper

    from edgecompress.errors import StageError
    from edgecompress.quantize.nbits import block_quantize_embeddings, narrower_than_a_block

    assert narrower_than_a_block({"word": (10, 48), "bias": (32, 6)}, 32) == {"bias": (32, 6)}
    table = numpy_helper.from_array(np.ones((10, 48), np.float32), "word")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["word", "ids"], ["rows"], name="g")],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [1, 48])],
        [table],
    )
    with pytest.raises(StageError, match="does not divide an embedding width of 48"):
        block_quantize_embeddings(helper.make_model(graph), 4, 32)
