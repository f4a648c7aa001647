"""Importance of each head and feed-forward unit, normalised per layer (Michel et al., 2019).

gradient: expected |dL/d gate| of a multiplicative gate (all ones) on each head's output and on each
intermediate unit, over batches of the training split. transformers dropped ``head_mask``, so the gates
are our own forward hooks.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from edgecompress.modeling.layers import layer_parts, magnitude_importance


def normalise_per_layer(scores: list[np.ndarray]) -> list[np.ndarray]:
    """Divide each layer's scores by their L2 norm, so layers are comparable in a global ranking."""
    return [s / (np.linalg.norm(s) or 1.0) for s in scores]


@contextmanager
def _gates(model: torch.nn.Module):
    """Multiplicative gates on every head's context and every intermediate unit: on the INPUT of the attention
    output projection and of the FFN output layer, which is per head / per unit in every family (the output
    of DistilBERT's attention module is already projected)."""
    parts = layer_parts(model)
    head_gates = [torch.ones(p.num_heads, requires_grad=True) for p in parts]
    unit_gates = [torch.ones(p.num_units, requires_grad=True) for p in parts]
    hooks = []

    def head_hook(gate, head_size):
        def hook(_module, args):
            context, *rest = args
            shape = context.shape
            gated = context.reshape(*shape[:-1], -1, head_size) * gate.to(context)[:, None]
            return (gated.reshape(shape), *rest)

        return hook

    def unit_hook(gate):
        return lambda _m, args: (args[0] * gate.to(args[0]), *args[1:])

    for p, hg, ug in zip(parts, head_gates, unit_gates, strict=True):
        hooks.append(p.attention_output.register_forward_pre_hook(head_hook(hg, p.head_size)))
        hooks.append(p.ffn_output.register_forward_pre_hook(unit_hook(ug)))
    try:
        yield head_gates, unit_gates
    finally:
        for h in hooks:
            h.remove()


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def on_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors where the model is (loaders build them on the CPU; training may run on a GPU)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def gradient_importance(model, batches) -> tuple[list[np.ndarray], list[np.ndarray]]:
    model.eval()
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with _gates(model) as (head_gates, unit_gates):
            heads = [np.zeros(g.numel()) for g in head_gates]
            units = [np.zeros(g.numel()) for g in unit_gates]
            for batch in batches:
                batch = on_device(batch, model_device(model))
                labels = batch.pop("labels")
                loss = F.cross_entropy(model(**batch).logits.float(), labels)
                grads = torch.autograd.grad(loss, head_gates + unit_gates)
                for i, g in enumerate(grads[: len(heads)]):
                    heads[i] += g.abs().cpu().numpy()
                for i, g in enumerate(grads[len(heads) :]):
                    units[i] += g.abs().cpu().numpy()
    finally:
        for p, flag in zip(model.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
    n = max(1, len(batches))
    return [h / n for h in heads], [u / n for u in units]


@torch.no_grad()
def entropy_importance(model, batches) -> list[np.ndarray]:
    """1 - (attention entropy / its maximum): focused heads score high, near-uniform heads low."""
    model.eval()
    parts = layer_parts(model)
    sums = [np.zeros(p.num_heads) for p in parts]
    rows = 0.0
    for batch in batches:
        batch = on_device({k: v for k, v in batch.items() if k != "labels"}, model_device(model))
        out = model(**batch, output_attentions=True)
        mask = batch["attention_mask"].float()
        n_valid = mask.sum(-1).clamp_min(2)  # per example
        for i, att in enumerate(out.attentions):
            ent = -(att * torch.log(att + 1e-12)).sum(-1)  # [b, h, q]
            ent = ent / torch.log(n_valid)[:, None, None]
            sums[i] += ((1 - ent) * mask[:, None, :]).sum((0, 2)).cpu().numpy()
        rows += float(mask.sum())
    return [s / max(rows, 1.0) for s in sums]


def importance(model, batches, method: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-layer normalised (head scores, unit scores) by ``method``; units use gradient or magnitude."""
    if method == "gradient":
        heads, units = gradient_importance(model, batches)
    elif method == "entropy":
        heads = entropy_importance(model, batches)
        units = magnitude_importance(model)[1]
    elif method == "magnitude":
        heads, units = magnitude_importance(model)
    else:
        raise ValueError(f"unknown importance '{method}'")
    return normalise_per_layer(heads), normalise_per_layer(units)
