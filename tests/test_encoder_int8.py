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
