"""The layer layout, in one place (per family through ``modeling.encoders``): where the layers are, the parts pruning slices, heads and
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

from edgecompress.modeling.encoders import EncoderAdapter, adapter_for

FFN_SIZES = "edgecompress_ffn_sizes"  # config key: per-layer FFN widths when they differ (global FFN pruning)
HEADS = "edgecompress_heads"  # config key: per-layer original ids of the kept heads, for the families whose
# config.pruned_heads cannot rebuild the shapes (modeling.encoders: own_head_record)


@dataclass
class LayerParts:
    """The pieces of one transformer layer that pruning slices, found through the family's adapter."""

    layer: nn.Module
    attention: nn.Module  # holds transformers' .pruned_heads (BERT: .self and .output)
    self_attention: nn.Module  # holds q/k/v and the head-count attributes
    attention_output: nn.Linear  # its input is the per-head context
    intermediate: nn.Module  # its output (after the activation) is the per-unit signal
    intermediate_dense: nn.Linear
    ffn_output: nn.Linear  # its input is the per-unit signal
    adapter: EncoderAdapter

    @property
    def num_heads(self) -> int:
        return self.adapter.heads(self.layer)

    @property
    def head_size(self) -> int:
        return self.adapter.head_size(self.layer)

    @property
    def num_units(self) -> int:
        return self.adapter.units(self.layer)


def layer_list_name(model: nn.Module) -> str:
    """Dotted name of the ModuleList holding the transformer layers (from the model type's adapter)."""
    return adapter_for(model, "distill", "student").layers_name(model)


def layer_parts(model: nn.Module) -> list[LayerParts]:
    adapter = adapter_for(model, "prune", "prune")
    return [
        LayerParts(
            layer,
            adapter.part(layer, "pruned_heads_on" if adapter.slots.pruned_heads_on else "attention"),
            adapter.part(layer, "attention"),
            adapter.part(layer, "attn_out"),
            adapter.part(layer, "ffn_act"),
            adapter.part(layer, "ffn_in"),
            adapter.part(layer, "ffn_out"),
            adapter,
        )
        for layer in adapter.layers(model)
    ]


def pruned_heads(config) -> dict[int, set[int]]:
    """``config.pruned_heads`` with int layer keys (JSON round trips turn them into strings)."""
    return {int(k): set(v) for k, v in (getattr(config, "pruned_heads", None) or {}).items()}


def surviving_heads(config) -> list[list[int]]:
    """Original head ids left in each layer, in slicing order (from the config: no weights needed)."""
    recorded = getattr(config, HEADS, None)
    if recorded:
        return [list(alive) for alive in recorded]
    gone, adapter = pruned_heads(config), adapter_for(config)
    return [
        [h for h in range(adapter.num_heads(config)) if h not in gone.get(i, set())]
        for i in range(adapter.num_layers(config))
    ]


def heads_per_layer(config) -> list[int]:
    """Attention heads left in each layer (from the config: no weights needed)."""
    return [len(alive) for alive in surviving_heads(config)]


def ffn_widths(config) -> list[int]:
    """Feed-forward (intermediate) units in each layer (from the config: no weights needed)."""
    sizes, adapter = getattr(config, FFN_SIZES, None), adapter_for(config)
    return list(sizes) if sizes else [adapter.ffn_size(config)] * adapter.num_layers(config)


def head_counts(model: nn.Module) -> list[int]:
    """Heads in each layer as the modules hold them."""
    return [p.num_heads for p in layer_parts(model)]


def ffn_sizes(model: nn.Module) -> list[int]:
    """Feed-forward units in each layer as the modules hold them."""
    return [p.num_units for p in layer_parts(model)]


def record_ffn_sizes(model: nn.Module) -> None:
    """Write the modules' FFN widths into the config (under the family's key: DistilBERT's ``hidden_dim``):
    equal widths stay a plain transformers config."""
    sizes, adapter = ffn_sizes(model), adapter_for(model)
    if len(set(sizes)) == 1:
        adapter.set_shape(model.config, "ffn", sizes[0])
        if hasattr(model.config, FFN_SIZES):
            delattr(model.config, FFN_SIZES)
    else:
        adapter.set_shape(model.config, "ffn", max(sizes))
        setattr(model.config, FFN_SIZES, sizes)


def resize_ffn(model: nn.Module, sizes: list[int]) -> None:
    """Give each layer a feed-forward block of the given width (new, untrained weights)."""
    for part, size in zip(layer_parts(model), sizes, strict=True):
        part.adapter.resize_units(part.layer, size)
    record_ffn_sizes(model)


def rebuild_heads(model: nn.Module) -> None:
    """Give a model built from a config with ``edgecompress_heads`` the recorded head counts (untrained
    weights: the checkpoint is loaded next)."""
    alive = getattr(model.config, HEADS, None)
    if not alive:
        return
    adapter = adapter_for(model)
    for layer, kept in zip(adapter.layers(model), alive, strict=True):
        if len(kept) < adapter.heads(layer):
            adapter.keep_heads(layer, list(range(len(kept))))
    if alive and len(alive[0]) < adapter.num_heads(model.config):
        adapter.keep_shared_heads(model, list(range(len(alive[0]))))


def count_parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def magnitude_importance(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """L2 norm of each head's query/key/value rows and output columns; of each unit's in/out weights."""
    heads, units = [], []
    for p in layer_parts(model):
        d = p.head_size
        w, out = p.adapter.head_weights(p.layer)
        per_head = []
        for h in range(p.num_heads):
            rows = slice(h * d, (h + 1) * d)
            sq = sum(float((m[rows] ** 2).sum()) for m in w) + float((out[:, rows] ** 2).sum())
            per_head.append(math.sqrt(sq))
        heads.append(np.array(per_head))
        w_out = p.ffn_output.weight.detach()
        units.append((p.adapter.unit_in_norms(p.layer) * w_out.norm(dim=0)).cpu().numpy())
    return heads, units
