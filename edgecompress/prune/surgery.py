"""Physical removal of heads, feed-forward units and whole layers, per family through its encoder adapter.

We own the slicing (``prune_linear_layer`` on query/key/value rows and output-projection columns) rather
than calling ``model.prune_heads``, which transformers 5 removed; ``config.pruned_heads`` is still written
in the transformers format so the checkpoint reloads with the same shapes.
"""

from __future__ import annotations

from torch import nn

from edgecompress.errors import ModelError
from edgecompress.modeling.encoders import adapter_for, uniform_heads_only
from edgecompress.modeling.layers import (
    HEADS,
    layer_list_name,
    layer_parts,
    record_ffn_sizes,
    surviving_heads,
)


def remove_heads(model: nn.Module, remove: dict[int, list[int]]) -> None:
    """Remove heads given by their current position in each layer; keeps ``config.pruned_heads`` (or
    ``edgecompress_heads``) exact. A family whose heads share one bias table (MPNet) takes only the same
    positions from every layer, and its table loses those columns."""
    parts = layer_parts(model)
    alive = surviving_heads(model.config)
    adapter = adapter_for(model)
    if adapter.uniform_heads and any(remove.values()):
        chosen = {tuple(sorted(remove.get(i, []))) for i in range(len(parts))}
        if len(chosen) > 1:
            raise ModelError(uniform_heads_only(model.config.model_type, "prune"), where="prune.heads")
        adapter.keep_shared_heads(
            model, [h for h in range(parts[0].num_heads) if h not in set(remove.get(0, []))]
        )
    for i, heads in remove.items():
        if not heads:
            continue
        p = parts[i]
        keep = [h for h in range(p.num_heads) if h not in set(heads)]
        p.adapter.keep_heads(p.layer, keep)
        alive[i] = [alive[i][h] for h in keep]
    _write_head_config(model, alive)


def _write_head_config(model: nn.Module, alive: list[list[int]]) -> None:
    adapter = adapter_for(model)
    n = adapter.num_heads(model.config)
    if adapter.own_head_record:
        if any(len(a) < n for a in alive):
            setattr(model.config, HEADS, [list(a) for a in alive])
        elif hasattr(model.config, HEADS):
            delattr(model.config, HEADS)
    else:
        model.config.pruned_heads = {
            i: sorted(set(range(n)) - set(a)) for i, a in enumerate(alive) if len(a) < n
        }
    for p, a in zip(layer_parts(model), alive, strict=True):
        p.adapter.set_pruned_heads(p.layer, set(range(n)) - set(a))


def remove_units(model: nn.Module, remove: dict[int, list[int]]) -> None:
    """Remove intermediate (feed-forward) units by position; records unequal widths in the config."""
    parts = layer_parts(model)
    for i, units in remove.items():
        if not units:
            continue
        p = parts[i]
        p.adapter.keep_units(p.layer, [u for u in range(p.num_units) if u not in set(units)])
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
    adapter_for(model).set_shape(model.config, "layers", len(keep))
    _write_head_config(model, [alive[i] for i in keep])
    record_ffn_sizes(model)
