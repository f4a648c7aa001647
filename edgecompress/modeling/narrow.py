"""A narrower student initialised from the teacher instead of at random.

The residual stream of an encoder layer stack is one ``hidden``-wide space shared by every layer, so one basis
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

from edgecompress.inputs import model_inputs
from edgecompress.modeling.encoders import adapter_for
from edgecompress.modeling.layers import layer_parts, magnitude_importance


@torch.no_grad()
def principal_directions(teacher: nn.Module, batches: list[dict], width: int) -> tuple[torch.Tensor, float]:
    """``(P, share)``: the ``width`` leading directions (hidden x width) of the teacher's hidden states at real
    tokens (embeddings and every layer), and the share of their second moment those directions hold."""
    teacher.eval()
    hidden = adapter_for(teacher, "distill").hidden_size(teacher.config)
    moment = torch.zeros(hidden, hidden, dtype=torch.float64)
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k in model_inputs(teacher)}
        states = teacher(**inputs, output_hidden_states=True).hidden_states
        real = inputs["attention_mask"].bool()
        for h in states:
            x = h[real].double()
            moment += x.T @ x
    values, vectors = torch.linalg.eigh(moment)  # ascending
    top = vectors[:, -width:].flip(-1).float()
    return top, float(values[-width:].sum() / values.sum())


def _copy_layernorm(student_ln: nn.Module, teacher_ln: nn.Module, p: torch.Tensor) -> None:
    """(ModernBERT: LayerNorms without bias, and an Identity where layer 0 has no attention norm.)"""
    if not isinstance(student_ln, nn.LayerNorm) or not isinstance(teacher_ln, nn.LayerNorm):
        return
    student_ln.weight.copy_((p**2).T @ teacher_ln.weight)  # diag of P^T diag(gamma) P
    if student_ln.bias is not None and teacher_ln.bias is not None:
        student_ln.bias.copy_(p.T @ teacher_ln.bias)


def _copy_bias(dst: nn.Module, src: torch.Tensor | None) -> None:
    if dst.bias is not None and src is not None:
        dst.bias.copy_(src)


def _largest(scores, n: int) -> list[int]:
    return sorted(torch.as_tensor(scores).argsort(descending=True)[:n].tolist())


def _narrow_embeddings(student: nn.Module, teacher: nn.Module, p: torch.Tensor) -> None:
    """The tables write the stream (``@ p``), unless a projection does (ELECTRA's ``embeddings_project``,
    which the student has whenever its width differs from the tables'): the tables and their LayerNorm are
    then copied as they are and the projection goes to ``p^T W`` (``p^T`` where the teacher has none)."""
    adapter = adapter_for(teacher, "distill")
    s_project = adapter.embedding(student, "embedding_project")
    names = ("word_embeddings", "position_embeddings", "token_type_embeddings")
    for name in names:
        t_table, s_table = adapter.embedding(teacher, name), adapter.embedding(student, name)
        if t_table is not None and s_table is not None:
            s_table.weight.copy_(t_table.weight if s_project is not None else t_table.weight @ p)
    t_norm, s_norm = (
        adapter.embedding(teacher, "embedding_norm"),
        adapter.embedding(student, "embedding_norm"),
    )
    if s_project is None:
        _copy_layernorm(s_norm, t_norm, p)
        return
    s_norm.load_state_dict(t_norm.state_dict())
    t_project = adapter.embedding(teacher, "embedding_project")
    if t_project is None:
        s_project.weight.copy_(p.T)
        s_project.bias.zero_()
    else:
        s_project.weight.copy_(p.T @ t_project.weight)
        s_project.bias.copy_(p.T @ t_project.bias)


def _narrow_head(student: nn.Module, teacher: nn.Module, p: torch.Tensor) -> None:
    """The classification head: hidden -> hidden modules (BERT's pooler, RoBERTa's classifier.dense,
    DistilBERT's pre_classifier) on both sides, the logits layer on its input side."""
    adapter = adapter_for(teacher, "distill")
    (t_square, t_out), (s_square, s_out) = adapter.head_modules(teacher), adapter.head_modules(student)
    for t, s in zip(t_square, s_square, strict=False):
        s.weight.copy_(p.T @ t.weight @ p)
        _copy_bias(s, None if t.bias is None else p.T @ t.bias)
    for path in adapter.head_norms:  # ModernBERT's head.norm reads the projected head vector
        _copy_layernorm(student.get_submodule(path), teacher.get_submodule(path), p)
    s_out.weight.copy_(t_out.weight @ p)
    _copy_bias(s_out, t_out.bias)


def _get_shared(model: nn.Module, adapter) -> nn.Embedding:
    return model.base_model.get_submodule(adapter.shared_head_bias)


def _get_optional(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.base_model.get_submodule(path)
    except AttributeError:
        return None


@torch.no_grad()
def narrow_from_teacher(
    student: nn.Module, teacher: nn.Module, init_layers: list[int], p: torch.Tensor
) -> None:
    """Initialise ``student`` (narrower, same head size) from ``teacher`` through the basis ``p``."""
    _narrow_embeddings(student, teacher, p)
    head_scores, unit_scores = magnitude_importance(teacher)
    t_parts, s_parts = layer_parts(teacher), layer_parts(student)
    a = t_parts[0].adapter
    shared = (
        None  # MPNet: one bias column per head, shared by all layers, so every layer keeps the same heads
    )
    if a.uniform_heads:
        shared = _largest(sum(torch.as_tensor(head_scores[ti]) for ti in init_layers), s_parts[0].num_heads)
        t_bias = _get_shared(teacher, a)
        _get_shared(student, a).weight.copy_(t_bias.weight[:, shared])
    for s, ti in zip(s_parts, init_layers, strict=True):
        t = t_parts[ti]
        d = t.head_size
        kept = shared if shared is not None else _largest(head_scores[ti], s.num_heads)
        rows = [h * d + j for h in kept for j in range(d)]
        # q/k/v, the per-head extras (DeBERTa's pos_key_proj / pos_query_proj) or the fused Wqkv (ModernBERT)
        for path, src_rows in a.head_row_parts(t.layer, kept):
            src, dst = t.layer.get_submodule(path), s.layer.get_submodule(path)
            dst.weight.copy_(src.weight[src_rows] @ p)
            _copy_bias(dst, None if src.bias is None else src.bias[src_rows])
        s.attention_output.weight.copy_(p.T @ t.attention_output.weight[:, rows])
        _copy_bias(
            s.attention_output, None if t.attention_output.bias is None else p.T @ t.attention_output.bias
        )
        _copy_layernorm(a.part(s.layer, "attn_norm"), a.part(t.layer, "attn_norm"), p)
        units = _largest(unit_scores[ti], s.num_units)
        unit_rows = a.unit_rows(t.layer, units)  # GLU: both halves of each unit
        s.intermediate_dense.weight.copy_(t.intermediate_dense.weight[unit_rows] @ p)
        _copy_bias(
            s.intermediate_dense,
            None if t.intermediate_dense.bias is None else t.intermediate_dense.bias[unit_rows],
        )
        s.ffn_output.weight.copy_(p.T @ t.ffn_output.weight[:, units])
        _copy_bias(s.ffn_output, None if t.ffn_output.bias is None else p.T @ t.ffn_output.bias)
        _copy_layernorm(a.part(s.layer, "ffn_norm"), a.part(t.layer, "ffn_norm"), p)
    for path in a.stream_tables:  # read by the layers like the stream (DeBERTa's relative embeddings)
        student.base_model.get_submodule(path).weight.copy_(teacher.base_model.get_submodule(path).weight @ p)
    for path in a.stream_norms:
        t_norm, s_norm = _get_optional(teacher, path), _get_optional(student, path)
        if t_norm is not None and s_norm is not None:
            _copy_layernorm(s_norm, t_norm, p)
    _narrow_head(student, teacher, p)
