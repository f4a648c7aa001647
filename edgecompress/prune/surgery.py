"""Physical removal of heads, feed-forward units and whole layers from BERT-style models.

We own the slicing (``prune_linear_layer`` on query/key/value rows and output-projection columns) rather
than calling ``model.prune_heads``, which transformers 5 removed; ``config.pruned_heads`` is still written
in the transformers format so the checkpoint reloads with the same shapes.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import prune_linear_layer

from edgecompress.errors import ModelError
from edgecompress.modeling.layers import layer_list_name, layer_parts, record_ffn_sizes, surviving_heads


def remove_heads(model: nn.Module, remove: dict[int, list[int]]) -> None:
    """Remove heads given by their current position in each layer; keeps ``config.pruned_heads`` exact."""
    parts = layer_parts(model)
    alive = surviving_heads(model.config)
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


def drop_layers(model: nn.Module, layers: list[int]) -> None:
    """Remove whole transformer layers (allowed when all their heads go)."""
    if not layers:
        return
    name = layer_list_name(model)
    old = model.get_submodule(name)
    alive = surviving_heads(model.config)
    keep = [i for i in range(len(old)) if i not in set(layers)]
    if not keep:
        raise ModelError("pruning would remove every layer", where="prune.heads")
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, nn.ModuleList(old[i] for i in keep))
    model.config.num_hidden_layers = len(keep)
    _write_head_config(model, [alive[i] for i in keep])
    record_ffn_sizes(model)
