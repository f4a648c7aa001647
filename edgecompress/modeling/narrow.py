"""A narrower student initialised from the teacher instead of at random.

The residual stream of a BERT layer stack is one ``hidden``-wide space shared by every layer, so one basis
serves them all: the leading principal directions ``P`` (hidden x width) of the teacher's hidden states on
training text. Every weight that reads the stream is multiplied by ``P`` on its input side, every weight that
writes it by ``P^T`` on its output side; each student layer keeps the teacher layer's heads and feed-forward
units with the largest weights (head size unchanged). LayerNorm does not commute with the projection, so its
scales are only carried over approximately: the start is the teacher seen through ``P``, and distillation
(with the hidden-state projection and attention transfer) does the rest.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecompress.modeling.layers import layer_parts, magnitude_importance


@torch.no_grad()
def principal_directions(teacher: nn.Module, batches: list[dict], width: int) -> tuple[torch.Tensor, float]:
    """``(P, share)``: the ``width`` leading directions (hidden x width) of the teacher's hidden states at real
    tokens (embeddings and every layer), and the share of their second moment those directions hold."""
    teacher.eval()
    hidden = teacher.config.hidden_size
    moment = torch.zeros(hidden, hidden, dtype=torch.float64)
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        states = teacher(**inputs, output_hidden_states=True).hidden_states
        real = inputs["attention_mask"].bool()
        for h in states:
            x = h[real].double()
            moment += x.T @ x
    values, vectors = torch.linalg.eigh(moment)  # ascending
    top = vectors[:, -width:].flip(-1).float()
    return top, float(values[-width:].sum() / values.sum())


def _copy_layernorm(student_ln: nn.LayerNorm, teacher_ln: nn.LayerNorm, p: torch.Tensor) -> None:
    student_ln.weight.copy_((p**2).T @ teacher_ln.weight)  # diag of P^T diag(gamma) P
    student_ln.bias.copy_(p.T @ teacher_ln.bias)


def _largest(scores, n: int) -> list[int]:
    return sorted(torch.as_tensor(scores).argsort(descending=True)[:n].tolist())


@torch.no_grad()
def narrow_from_teacher(
    student: nn.Module, teacher: nn.Module, init_layers: list[int], p: torch.Tensor
) -> None:
    """Initialise ``student`` (narrower, same head size) from ``teacher`` through the basis ``p``."""
    t_base, s_base = teacher.base_model, student.base_model
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        getattr(s_base.embeddings, name).weight.copy_(getattr(t_base.embeddings, name).weight @ p)
    _copy_layernorm(s_base.embeddings.LayerNorm, t_base.embeddings.LayerNorm, p)
    head_scores, unit_scores = magnitude_importance(teacher)
    t_parts, s_parts = layer_parts(teacher), layer_parts(student)
    for s, ti in zip(s_parts, init_layers, strict=True):
        t = t_parts[ti]
        d = t.head_size
        rows = [h * d + j for h in _largest(head_scores[ti], s.num_heads) for j in range(d)]
        for q in ("query", "key", "value"):
            src, dst = getattr(t.self_attention, q), getattr(s.self_attention, q)
            dst.weight.copy_(src.weight[rows] @ p)
            dst.bias.copy_(src.bias[rows])
        s.attention_output.weight.copy_(p.T @ t.attention_output.weight[:, rows])
        s.attention_output.bias.copy_(p.T @ t.attention_output.bias)
        _copy_layernorm(s.attention.output.LayerNorm, t.attention.output.LayerNorm, p)
        units = _largest(unit_scores[ti], s.num_units)
        s.intermediate_dense.weight.copy_(t.intermediate_dense.weight[units] @ p)
        s.intermediate_dense.bias.copy_(t.intermediate_dense.bias[units])
        s.ffn_output.weight.copy_(p.T @ t.ffn_output.weight[:, units])
        s.ffn_output.bias.copy_(p.T @ t.ffn_output.bias)
        _copy_layernorm(s.layer.output.LayerNorm, t.layer.output.LayerNorm, p)
    if getattr(t_base, "pooler", None) is not None and getattr(s_base, "pooler", None) is not None:
        s_base.pooler.dense.weight.copy_(p.T @ t_base.pooler.dense.weight @ p)
        s_base.pooler.dense.bias.copy_(p.T @ t_base.pooler.dense.bias)
    student.classifier.weight.copy_(teacher.classifier.weight @ p)
    student.classifier.bias.copy_(teacher.classifier.bias)
