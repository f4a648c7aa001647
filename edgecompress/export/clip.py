"""Any input length: a small subgraph at the front of every exported graph truncates its token inputs to
``max_length`` tokens, as the tokenizer would, so clients that do not truncate still run.

transformers' pipelines and ORTModel call the tokenizer without ``truncation``, and a fast tokenizer then
switches truncation off whatever tokenizer.json says; a pruned model keeps only ``max_length`` position rows
(an unpruned one 512), so a long text crashed inside ONNX Runtime. The graph clips instead.

For each row b of a batch of width L (N = max_length, W = min(L, N), len_b = sum(attention_mask[b])),
every 2-D int64 input x (input_ids, attention_mask, token_type_ids) becomes ``GatherElements(x, idx)``:

- right padding (the tokenizers' default; attention_mask[b, 0] = 1): idx_b = 0 .. W-2, then len_b - 1 when
  len_b > N, else W - 1. A text longer than N tokens becomes its first N - 1 tokens and its last one
  ([CLS] t1 .. t_{N-2} [SEP]: what ``tokenizer(..., truncation=True, max_length=N)`` gives); shorter rows of
  the batch are unchanged. A text pair keeps its first N - 1 tokens and its final [SEP] (the tokenizer's
  ``longest_first`` would shorten the longer text instead).
- left padding (attention_mask[b, 0] = 0): the row's real tokens start at s_b = L - len_b; idx_b =
  L - max(len_b, W) .. + W - 2, then L - 1: a long text becomes its first N - 1 and its last token, a short
  one keeps its last W positions (its padding, then itself), as the tokenizer would pad it to W.

Batches no wider than N go through unchanged. The subgraph is int64 arithmetic (Shape, Slice, ReduceSum,
Min/Max, Where, Range, Concat) and GatherElements, never Gather (which the quantizers and
``nbits.embedding_gathers`` treat as embedding lookups), all named under ``/edgecompress/clip/``: the
quantizers leave it alone and the accuracy guard's node groups skip it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREFIX = "/edgecompress/clip/"
MASK = "attention_mask"


def clipped_inputs(graph) -> list[str]:
    """Names of the graph inputs the clip applies to: every 2-D int64 input."""
    from onnx import TensorProto

    return [
        i.name
        for i in graph.input
        if i.type.tensor_type.elem_type == TensorProto.INT64 and len(i.type.tensor_type.shape.dim) == 2
    ]


def _rename_uses(graph, renames: dict[str, str]) -> None:
    """Point every node (and every subgraph of If / Loop / Scan) that reads an input at its clipped copy."""
    from onnx import AttributeProto

    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in renames:
                node.input[k] = renames[name]
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                _rename_uses(attr.g, renames)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _rename_uses(g, renames)


def add_input_clip(model, max_length: int) -> list[str]:
    """Edit ``model`` (an onnx.ModelProto, in place): its 2-D int64 inputs are truncated to ``max_length``
    tokens inside the graph (module docstring). Returns the clipped input names."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    names = clipped_inputs(graph)
    if not names or any(n.name.startswith(PREFIX) for n in graph.node):
        return []
    p = PREFIX

    def const(name: str, value, shape=None) -> str:
        array = np.asarray(value, dtype=np.int64)
        graph.initializer.append(numpy_helper.from_array(array.reshape(shape or array.shape), p + name))
        return p + name

    n_len, one, zero = const("N", [max_length]), const("one", [1]), const("zero", [0])
    one_s, zero_s, axis1 = const("one_scalar", 1, ()), const("zero_scalar", 0, ()), const("axis1", [1])
    nodes = []

    def op(op_type: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op_type, inputs, [p + name], name=p + name, **attrs))
        return p + name

    shape = op("Shape", [names[0]], "shape")
    width_in = op("Slice", [shape, one, const("two", [2]), zero], "L")  # [1]: the batch's width
    width = op("Min", [width_in, n_len], "W")
    if MASK in names:
        mask = MASK
    else:  # every token is real
        mask = op(
            "ConstantOfShape", [shape], "ones", value=helper.make_tensor("v", TensorProto.INT64, [1], [1])
        )
    lengths = op("ReduceSum", [mask, axis1], "len", keepdims=1)  # [B, 1]
    first = op("Slice", [mask, zero, one, one], "first")  # [B, 1]: attention_mask[:, 0]
    left = op("Equal", [first, zero], "left_padded")
    too_long = op("Greater", [lengths, n_len], "too_long")
    right_last = op(
        "Where",
        [too_long, op("Sub", [lengths, one], "len_minus_1"), op("Sub", [width, one], "W_minus_1")],
        "right_last",
    )
    last = op("Where", [left, op("Sub", [width_in, one], "L_minus_1"), right_last], "last")
    left_start = op("Sub", [width_in, op("Max", [lengths, width], "len_or_W")], "left_start")
    start = op("Where", [left, left_start, zero], "start")
    head_width = op("Reshape", [p + "W_minus_1", const("scalar_shape", [], (0,))], "W_minus_1_scalar")
    columns = op("Range", [zero_s, head_width, one_s], "columns")  # 0 .. W-2
    head = op("Add", [start, columns], "head")  # [B, W-1]
    index = op("Concat", [head, last], "index", axis=1)  # [B, W]
    renames = {name: op("GatherElements", [name, index], name, axis=1) for name in names}
    _rename_uses(graph, renames)  # the model's nodes read the clipped inputs; the clip reads the originals
    for offset, node in enumerate(nodes):
        graph.node.insert(offset, node)
    return names


def clip_file(onnx_path: Path, max_length: int) -> list[str]:
    """``add_input_clip`` on a saved model; external weight files are left where they are."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    names = add_input_clip(model, max_length)
    if names:
        onnx.save(model, str(onnx_path))
    return names


def truncating_tokenizer(tokenizer, max_length: int):
    """``tokenizer`` set to truncate at ``max_length`` by default when saved: ``model_max_length`` (what
    transformers truncates to with ``truncation=True``) and the truncation stored in tokenizer.json (what
    ``tokenizers.Tokenizer.from_file`` applies by default)."""
    tokenizer.model_max_length = max_length
    if getattr(tokenizer, "is_fast", False):
        tokenizer.backend_tokenizer.enable_truncation(max_length, direction=tokenizer.truncation_side)
    return tokenizer
