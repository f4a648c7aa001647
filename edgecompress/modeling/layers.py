"""The BERT layer layout, in one place: where the layers are, the parts pruning slices, heads and
feed-forward widths per layer (from a model or from its config alone), and the weight magnitude of each head
and unit (which pruning and the narrow student's initialisation both rank by).

Everything that reads ``config.pruned_heads`` or ``config.edgecompress_ffn_sizes`` goes through here, so
loading, building, distilling and pruning agree on what a layer holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgecompress.errors import ModelError

FFN_SIZES = "edgecompress_ffn_sizes"  # config key: per-layer FFN widths when they differ (global FFN pruning)


@dataclass
class LayerParts:
    """The pieces of one transformer layer that pruning slices."""

    layer: nn.Module
    attention: nn.Module  # holds .self and .output (and transformers' .pruned_heads)
    self_attention: nn.Module  # .query/.key/.value, .num_attention_heads, .attention_head_size
    attention_output: nn.Linear
    intermediate: nn.Module  # its output (after the activation) is the per-unit signal
    intermediate_dense: nn.Linear
    ffn_output: nn.Linear

    @property
    def num_heads(self) -> int:
        return self.self_attention.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.self_attention.attention_head_size

    @property
    def num_units(self) -> int:
        return self.intermediate_dense.out_features


def layer_list_name(model: nn.Module) -> str:
    """Dotted name of the ModuleList holding the transformer layers (BERT, RoBERTa, DistilBERT, ...)."""
    n = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.ModuleList)
            and len(module) == n
            and name.split(".")[-1] in ("layer", "layers")
        ):
            return name
    raise ModelError(f"cannot find the transformer layers of {type(model).__name__}", where="student")


def layer_parts(model: nn.Module) -> list[LayerParts]:
    layers = model.get_submodule(layer_list_name(model))
    parts = []
    for i, layer in enumerate(layers):
        try:
            attn = layer.attention
            parts.append(
                LayerParts(
                    layer,
                    attn,
                    attn.self,
                    attn.output.dense,
                    layer.intermediate,
                    layer.intermediate.dense,
                    layer.output.dense,
                )
            )
        except AttributeError:
            raise ModelError(
                f"layer {i} of {type(model).__name__} is not BERT-style (attention.self.query/key/value, "
                "attention.output.dense, intermediate.dense, output.dense); pruning supports BERT-family models",
                where="prune",
            ) from None
    return parts


def pruned_heads(config) -> dict[int, set[int]]:
    """``config.pruned_heads`` with int layer keys (JSON round trips turn them into strings)."""
    return {int(k): set(v) for k, v in (getattr(config, "pruned_heads", None) or {}).items()}


def surviving_heads(config) -> list[list[int]]:
    """Original head ids left in each layer, in slicing order (from the config: no weights needed)."""
    gone = pruned_heads(config)
    return [
        [h for h in range(config.num_attention_heads) if h not in gone.get(i, set())]
        for i in range(config.num_hidden_layers)
    ]


def heads_per_layer(config) -> list[int]:
    """Attention heads left in each layer (from the config: no weights needed)."""
    return [len(alive) for alive in surviving_heads(config)]


def ffn_widths(config) -> list[int]:
    """Feed-forward (intermediate) units in each layer (from the config: no weights needed)."""
    sizes = getattr(config, FFN_SIZES, None)
    return list(sizes) if sizes else [config.intermediate_size] * config.num_hidden_layers


def head_counts(model: nn.Module) -> list[int]:
    """Heads in each layer as the modules hold them."""
    return [p.num_heads for p in layer_parts(model)]


def ffn_sizes(model: nn.Module) -> list[int]:
    """Feed-forward units in each layer as the modules hold them."""
    return [p.num_units for p in layer_parts(model)]


def record_ffn_sizes(model: nn.Module) -> None:
    """Write the modules' FFN widths into the config: equal widths stay a plain transformers config."""
    sizes = ffn_sizes(model)
    if len(set(sizes)) == 1:
        model.config.intermediate_size = sizes[0]
        if hasattr(model.config, FFN_SIZES):
            delattr(model.config, FFN_SIZES)
    else:
        model.config.intermediate_size = max(sizes)
        setattr(model.config, FFN_SIZES, sizes)


def resize_ffn(model: nn.Module, sizes: list[int]) -> None:
    """Give each layer a feed-forward block of the given width (new, untrained weights)."""
    for part, size in zip(layer_parts(model), sizes, strict=True):
        part.layer.intermediate.dense = nn.Linear(part.intermediate_dense.in_features, size)
        part.layer.output.dense = nn.Linear(size, part.ffn_output.out_features)
    record_ffn_sizes(model)


def count_parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def magnitude_importance(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """L2 norm of each head's query/key/value rows and output columns; of each unit's in/out weights."""
    heads, units = [], []
    for p in layer_parts(model):
        d, sa = p.head_size, p.self_attention
        w = [sa.query.weight.detach(), sa.key.weight.detach(), sa.value.weight.detach()]
        per_head = []
        for h in range(p.num_heads):
            rows = slice(h * d, (h + 1) * d)
            sq = sum(float((m[rows] ** 2).sum()) for m in w) + float(
                (p.attention_output.weight.detach()[:, rows] ** 2).sum()
            )
            per_head.append(math.sqrt(sq))
        heads.append(np.array(per_head))
        w_in = p.intermediate_dense.weight.detach()
        w_out = p.ffn_output.weight.detach()
        units.append((w_in.norm(dim=1) * w_out.norm(dim=0)).cpu().numpy())
    return heads, units
