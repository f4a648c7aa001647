"""INC's packed weight-only layers carried into ONNX as ONNX Runtime's MatMulNBits / GatherBlockQuantized.

Neither ONNX exporter writes INC's packed weights (both write dequantized float MatMuls), so the fp32
student graph is edited instead: each MatMul whose weight is a quantized ``nn.Linear`` becomes a
MatMulNBits node carrying INC's own integers, scales and zero points, unpacked bit for bit.

INC's "optimum" format (its default) per linear layer of K inputs and N outputs, p = 32 / bits values per
int32 word, value e of a word in bits [bits*e, bits*(e+1)):
  qweight int32 [K/p, N] packed along K; scales fp16 [K/g, N]; qzeros int32 [K/g, N/p] packed along N,
  holding zero_point - 1 (so a zero point of 0 is stored as -1); bias fp16.
ONNX Runtime's MatMulNBits (com.microsoft) wants B uint8 [N, K/g, g*bits/8] (4-bit: the even index in the
low nibble), scales [N*K/g] and zero points uint8 [N, ceil(K/g*bits/8)] packed the same way; value =
(q - zero_point) * scale. GatherBlockQuantized takes the same blocks for a [rows, width] table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from edgecompress.errors import StageError

MS_DOMAIN = "com.microsoft"


@dataclass
class BlockQuantized:
    """A [rows, cols] matrix in blocks of ``group_size`` along cols: value = (q - zero_point) * scale."""

    q: np.ndarray  # uint8 [rows, cols], 0 .. 2**bits - 1
    scales: np.ndarray  # float32 [rows, cols / group_size]
    zero_points: np.ndarray  # uint8 [rows, cols / group_size]
    bits: int
    group_size: int

    @property
    def symmetric(self) -> bool:
        """ONNX Runtime's default zero point (2**(bits-1)) everywhere: no zero-point tensor needed."""
        return bool(np.all(self.zero_points == 2 ** (self.bits - 1)))

    def dequantize(self) -> np.ndarray:
        """float32 [rows, cols], computed as ONNX Runtime does: (q - zero_point) * scale in float32."""
        zp = np.repeat(self.zero_points, self.group_size, axis=1).astype(np.float32)
        scales = np.repeat(self.scales, self.group_size, axis=1)
        return (self.q.astype(np.float32) - zp) * scales


def unpack_words(words: np.ndarray, bits: int) -> np.ndarray:
    """int32 words [..., W] -> their unsigned ``bits``-bit values [..., W * 32/bits], lowest bits first."""
    per_word = 32 // bits
    unsigned = words.astype(np.int64) & 0xFFFFFFFF
    shifts = np.arange(per_word, dtype=np.int64) * bits
    values = (unsigned[..., None] >> shifts) & (2**bits - 1)
    return values.reshape(*words.shape[:-1], -1).astype(np.uint8)


def pack_blocks(values: np.ndarray, bits: int) -> np.ndarray:
    """uint8 values [..., n] -> ONNX Runtime's packed bytes [..., n*bits/8] (4-bit: even index low nibble)."""
    if bits == 8:
        return values.astype(np.uint8)
    if values.shape[-1] % 2:
        values = np.concatenate([values, np.zeros((*values.shape[:-1], 1), np.uint8)], axis=-1)
    return (values[..., 0::2] & 0xF) | ((values[..., 1::2] & 0xF) << 4)


def unpack_inc_linear(module) -> tuple[BlockQuantized, np.ndarray | None]:
    """INC's ``INCWeightOnlyLinear`` (optimum format) -> its exact integers, scales, zero points and bias."""
    bits, group = int(module.bits), int(module.group_size)
    n, k = int(module.out_features), int(module.in_features)
    if not getattr(module, "use_optimum_format", False) or module.dtype != "int":
        raise StageError(
            f"unsupported INC layer format (dtype {module.dtype}, optimum format "
            f"{getattr(module, 'use_optimum_format', None)})",
            where="quantization",
        )
    g_idx = getattr(module, "g_idx", None)
    if g_idx is not None and not np.array_equal(g_idx.cpu().numpy(), np.arange(k) // group):
        raise StageError("INC reordered input channels (act_order): not supported by MatMulNBits here")
    q = unpack_words(module.qweight.cpu().numpy().T, bits)[:, :k]  # [N, K]
    stored = unpack_words(module.qzeros.cpu().numpy(), bits)[:, :n].T  # [N, K/g], zero_point - 1
    zero_points = ((stored.astype(np.int16) + 1) % 2**bits).astype(np.uint8)
    scales = module.scales.cpu().numpy().T.astype(np.float32)  # fp16 values, exact in float32
    bias = None if module.bias is None else module.bias.detach().cpu().float().numpy()
    return BlockQuantized(q, scales, zero_points, bits, group), bias


def quantize_table(weight: np.ndarray, bits: int, group_size: int, symmetric: bool) -> BlockQuantized:
    """An embedding table quantized in blocks with INC's own RTN (``quant_tensor``), as INC would a Linear."""
    import torch

    from edgecompress.quantize.inc import import_inc

    import_inc()  # quietly, before any INC module
    from neural_compressor.torch.algorithms.weight_only.utility import quant_tensor

    q, scale, zp = quant_tensor(
        torch.tensor(weight, dtype=torch.float32),
        bits=bits,
        group_size=group_size,
        scheme="sym" if symmetric else "asym",
        return_int=True,
    )
    q, scale = q.numpy(), scale.numpy().astype(np.float32)
    if zp is None:  # symmetric: signed integers around ONNX Runtime's default zero point
        offset = 2 ** (bits - 1)
        return BlockQuantized(
            (q + offset).astype(np.uint8), scale, np.full(scale.shape, offset, np.uint8), bits, group_size
        )
    return BlockQuantized(q.astype(np.uint8), scale, zp.numpy().astype(np.uint8), bits, group_size)


def weight_key(array: np.ndarray) -> str:
    """Identity of a float weight by value: finds the ONNX initializer exported from a PyTorch tensor."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    return hashlib.sha1(a.tobytes() + str(a.shape).encode()).hexdigest()


def _initializers(graph) -> dict:
    return {init.name: init for init in graph.initializer}


def find_weight_nodes(graph, weights: dict[str, np.ndarray], op_type: str, input_index: int) -> dict:
    """``{module name: node}`` for ``op_type`` nodes whose weight initializer equals a module's weight.

    ``weights`` holds each module's weight as the graph stores it (Linear: transposed, [in, out]).
    """
    from onnx import numpy_helper

    by_key = {weight_key(w): name for name, w in weights.items()}
    inits = _initializers(graph)
    found: dict = {}
    for node in graph.node:
        if node.op_type != op_type or len(node.input) <= input_index:
            continue
        init = inits.get(node.input[input_index])
        if init is None or len(init.dims) != 2:
            continue
        name = by_key.get(weight_key(numpy_helper.to_array(init)))
        if name is not None:
            found[name] = node
    return found


def _replace(graph, old, new_nodes: list) -> None:
    index = list(graph.node).index(old)
    graph.node.remove(old)
    for offset, node in enumerate(new_nodes):
        graph.node.insert(index + offset, node)


def _drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _set_bias(graph, matmul, bias: np.ndarray, name: str) -> bool:
    """Give the Add after ``matmul`` INC's bias (INC keeps it in fp16); False if there is no such Add."""
    from onnx import numpy_helper

    inits = _initializers(graph)
    for node in graph.node:
        if node.op_type == "Add" and matmul.output[0] in node.input:
            other = [i for i in node.input if i != matmul.output[0]]
            if len(other) == 1 and other[0] in inits and tuple(inits[other[0]].dims) == bias.shape:
                graph.initializer.append(numpy_helper.from_array(bias.astype(np.float32), f"{name}.bias_q"))
                node.input[list(node.input).index(other[0])] = f"{name}.bias_q"
                return True
    return False


def matmul_nbits(graph, name: str, matmul, layer: BlockQuantized, accuracy_level: int):
    """The MatMulNBits node (and its initializers) that replaces ``matmul``."""
    from onnx import helper, numpy_helper

    n, k = layer.q.shape
    blocks = k // layer.group_size
    packed = pack_blocks(layer.q, layer.bits).reshape(n, blocks, -1)
    inputs = [matmul.input[0], f"{name}.qweight", f"{name}.scales"]
    graph.initializer.extend(
        [
            numpy_helper.from_array(packed, inputs[1]),
            numpy_helper.from_array(layer.scales.reshape(-1).astype(np.float32), inputs[2]),
        ]
    )
    if not layer.symmetric:
        inputs.append(f"{name}.zero_points")
        graph.initializer.append(
            numpy_helper.from_array(pack_blocks(layer.zero_points, layer.bits).reshape(-1), inputs[3])
        )
    attrs = {"K": k, "N": n, "bits": layer.bits, "block_size": layer.group_size}
    if accuracy_level:
        attrs["accuracy_level"] = accuracy_level
    return helper.make_node(
        "MatMulNBits", inputs, list(matmul.output), name=f"{matmul.name}_NBits", domain=MS_DOMAIN, **attrs
    )


def gather_block_quantized(
    graph, name: str, gather, table: BlockQuantized, half_scales: bool = False
) -> list:
    """The GatherBlockQuantized node that replaces ``gather`` (and, with ``half_scales``, fp16 scales and a Cast
    of the rows back to fp32: a quarter of the scales' bytes)."""
    from onnx import TensorProto, helper, numpy_helper

    inputs = [f"{name}.qweight", gather.input[1], f"{name}.scales"]
    scale_type = np.float16 if half_scales else np.float32
    graph.initializer.extend(
        [
            numpy_helper.from_array(pack_blocks(table.q, table.bits), inputs[0]),
            numpy_helper.from_array(table.scales.astype(scale_type), inputs[2]),
        ]
    )
    if not table.symmetric:
        inputs.append(f"{name}.zero_points")
        graph.initializer.append(
            numpy_helper.from_array(pack_blocks(table.zero_points, table.bits), inputs[3])
        )
    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    rows = f"{name}.rows_fp16" if half_scales else gather.output[0]
    node = helper.make_node(
        "GatherBlockQuantized",
        inputs,
        [rows],
        name=f"{gather.name}_Q{table.bits}",
        domain=MS_DOMAIN,
        gather_axis=axis,
        quantize_axis=1,
        block_size=table.group_size,
        bits=table.bits,
    )
    if not half_scales:
        return [node]
    cast = helper.make_node(
        "Cast", [rows], [gather.output[0]], name=f"{gather.name}_Q{table.bits}_cast", to=TensorProto.FLOAT
    )
    return [node, cast]


def embedding_gathers(graph) -> dict[str, tuple]:
    """``{table name: (Gather node, float table)}`` for every Gather that looks up rows of a 2-D float
    initializer: the embedding tables (word, position, token type; both factors' first one when factorised)."""
    from onnx import TensorProto, numpy_helper

    inits = _initializers(graph)
    found = {}
    for node in graph.node:
        init = inits.get(node.input[0]) if node.op_type == "Gather" and node.input else None
        if init is not None and len(init.dims) == 2 and init.data_type == TensorProto.FLOAT:
            found[init.name] = (node, numpy_helper.to_array(init))
    return found


def narrower_than_a_block(tables: dict, group_size: int) -> dict:
    """The tables of ``{name: (rows, width)}`` narrower than one block: no block to quantize (MPNet's relative
    position bias, buckets x heads). They stay as they are (float, or Optimum's int8 Gather) instead of failing
    the variant; a table at least a block wide whose width the block does not divide is still an error."""
    return {name: shape for name, shape in tables.items() if shape[1] < group_size}


def block_quantize_embeddings(
    model, bits: int, group_size: int, half_scales: bool = True, names: Collection[str] | None = None
) -> dict:
    """Every embedding table of ``model`` (an onnx.ModelProto, edited in place), or those read by the Gather
    nodes ``names``, as a symmetric GatherBlockQuantized table (fp16 scales by default); returns the tables'
    names and shapes."""
    gathers = embedding_gathers(model.graph)
    if names is not None:
        gathers = {table: found for table, found in gathers.items() if found[0].name in names}
    for width in {table.shape[1] for _, table in gathers.values()}:
        if width % group_size:
            raise StageError(
                f"embedding_group_size {group_size} does not divide an embedding width of {width}",
                where="quantization",
            )
    for name, (node, table) in gathers.items():
        quantized = quantize_table(table, bits, group_size, symmetric=True)
        _replace(model.graph, node, gather_block_quantized(model.graph, name, node, quantized, half_scales))
    _finish(model)
    return {name: list(table.shape) for name, (_, table) in gathers.items()}


def _finish(model) -> None:
    """Drop the float weights the rewritten nodes no longer read; declare the com.microsoft domain."""
    from onnx import helper

    _drop_unused_initializers(model.graph)
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


def rewrite_graph(
    model,
    matmuls: dict,
    linears: dict[str, tuple[BlockQuantized, np.ndarray | None]],
    gathers: dict,
    tables: dict[str, BlockQuantized],
    accuracy_level: int = 0,
) -> dict:
    """Replace the mapped MatMul / Gather nodes of ``model`` (an onnx.ModelProto, edited in place)."""

    graph = model.graph
    biases = 0
    for name, (layer, bias) in linears.items():
        node = matmuls[name]
        if bias is not None:
            biases += _set_bias(graph, node, bias, name)
        _replace(graph, node, [matmul_nbits(graph, name, node, layer, accuracy_level)])
    for name, table in tables.items():
        node = gathers[name]
        _replace(graph, node, gather_block_quantized(graph, name, node, table))
    _finish(model)
    return {"matmul_nbits": len(linears), "gather_block_quantized": len(tables), "biases_from_inc": biases}
