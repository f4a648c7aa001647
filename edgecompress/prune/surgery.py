"""Physical removal of heads, feed-forward units and whole layers from BERT-style models.

We own the slicing (``prune_linear_layer`` on query/key/value rows and output-projection columns) rather
than calling ``model.prune_heads``, which transformers 5 removed; ``config.pruned_heads`` is still written
in the transformers format so the checkpoint reloads with the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import prune_linear_layer

from edgecompress.errors import ModelError
from edgecompress.modeling.student import layer_list_name


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


def surviving_heads(model: nn.Module) -> list[list[int]]:
    """Original head ids left in each layer (from ``config.pruned_heads``), in slicing order."""
    cfg = model.config
    pruned = {int(k): set(v) for k, v in (getattr(cfg, "pruned_heads", None) or {}).items()}
    return [
        [h for h in range(cfg.num_attention_heads) if h not in pruned.get(i, set())]
        for i in range(cfg.num_hidden_layers)
    ]


def remove_heads(model: nn.Module, remove: dict[int, list[int]]) -> None:
    """Remove heads given by their current position in each layer; keeps ``config.pruned_heads`` exact."""
    parts = layer_parts(model)
    alive = surviving_heads(model)
    for i, heads in remove.items():
        if not heads:
            continue
        p = parts[i]
        keep = [h for h in range(p.num_heads) if h not in set(heads)]
        d = p.head_size
        index = torch.tensor([h * d + j for h in keep for j in range(d)], dtype=torch.long)
        sa = p.self_attention
        sa.query = prune_linear_layer(sa.query, index)
        sa.key = prune_linear_layer(sa.key, index)
        sa.value = prune_linear_layer(sa.value, index)
        p.attention.output.dense = prune_linear_layer(p.attention_output, index, dim=1)
        sa.num_attention_heads = len(keep)
        sa.all_head_size = d * len(keep)
        alive[i] = [alive[i][h] for h in keep]
    _write_head_config(model, alive)


def _write_head_config(model: nn.Module, alive: list[list[int]]) -> None:
    n = model.config.num_attention_heads
    model.config.pruned_heads = {i: sorted(set(range(n)) - set(a)) for i, a in enumerate(alive) if len(a) < n}
    for p, a in zip(layer_parts(model), alive, strict=True):
        p.attention.pruned_heads = set(range(n)) - set(a)


def remove_units(model: nn.Module, remove: dict[int, list[int]]) -> None:
    """Remove intermediate (feed-forward) units by position; records unequal widths in the config."""
    parts = layer_parts(model)
    for i, units in remove.items():
        if not units:
            continue
        p = parts[i]
        keep = torch.tensor([u for u in range(p.num_units) if u not in set(units)], dtype=torch.long)
        p.layer.intermediate.dense = prune_linear_layer(p.intermediate_dense, keep)
        p.layer.output.dense = prune_linear_layer(p.ffn_output, keep, dim=1)
    record_ffn_sizes(model)


def record_ffn_sizes(model: nn.Module) -> None:
    sizes = [p.num_units for p in layer_parts(model)]
    if len(set(sizes)) == 1:
        model.config.intermediate_size = sizes[0]
        if hasattr(model.config, "edgecompress_ffn_sizes"):
            del model.config.edgecompress_ffn_sizes
    else:
        model.config.intermediate_size = max(sizes)
        model.config.edgecompress_ffn_sizes = sizes


def drop_layers(model: nn.Module, layers: list[int]) -> None:
    """Remove whole transformer layers (allowed when all their heads go)."""
    if not layers:
        return
    name = layer_list_name(model)
    old = model.get_submodule(name)
    alive = surviving_heads(model)
    keep = [i for i in range(len(old)) if i not in set(layers)]
    if not keep:
        raise ModelError("pruning would remove every layer", where="prune.heads")
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, nn.ModuleList(old[i] for i in keep))
    model.config.num_hidden_layers = len(keep)
    _write_head_config(model, [alive[i] for i in keep])
    record_ffn_sizes(model)


def ffn_sizes(model: nn.Module) -> list[int]:
    return [p.num_units for p in layer_parts(model)]


def head_counts(model: nn.Module) -> list[int]:
    return [p.num_heads for p in layer_parts(model)]
