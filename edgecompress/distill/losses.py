"""Distillation losses: hard labels, soft targets, attention transfer and hidden-state matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecompress.distill.config import DistillConfig

EPS = 1e-12


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(teacher || student) on temperature-softened distributions (Hinton et al.), in fp32."""
    t = temperature
    student_logits, teacher_logits = student_logits.float(), teacher_logits.float()
    return (
        F.kl_div(
            F.log_softmax(student_logits / t, dim=-1),
            F.log_softmax(teacher_logits / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )


def attention_transfer_loss(
    student_att: torch.Tensor,
    teacher_att: torch.Tensor,
    attention_mask: torch.Tensor,
    kind: str = "kl",
    teacher_heads: list[int] | None = None,
) -> torch.Tensor:
    """Compare attention probabilities [batch, heads, query, key] over real (unpadded) tokens.

    Heads are matched one to one when the counts agree (or ``teacher_heads`` picks the teacher's heads for
    each student head); otherwise both sides are averaged over heads first.
    kl: KL(teacher row || student row) per query row; mse: squared error summed over keys. Both are
    averaged over the real query rows of every head, in fp32 (maps computed in bf16 are cast up).
    """
    student_att, teacher_att = student_att.float(), teacher_att.float()
    if teacher_heads is not None:
        teacher_att = teacher_att[:, teacher_heads]
    if student_att.shape[1] != teacher_att.shape[1]:
        student_att = student_att.mean(1, keepdim=True)
        teacher_att = teacher_att.mean(1, keepdim=True)
    keys = attention_mask[:, None, None, :].to(student_att.dtype)
    rows = attention_mask[:, None, :].to(student_att.dtype).expand(-1, student_att.shape[1], -1)
    if kind == "kl":
        per_entry = teacher_att * (torch.log(teacher_att + EPS) - torch.log(student_att + EPS))
    elif kind == "mse":
        per_entry = (student_att - teacher_att) ** 2
    else:
        raise ValueError(f"unknown attention loss '{kind}'")
    per_row = (per_entry * keys).sum(-1)
    return (per_row * rows).sum() / rows.sum().clamp_min(1)


def logit_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, kind: str, temperature: float):
    """The soft-target term: T^2 KL at temperature T (``kl``), or squared error between logits (``mse``, as Tang
    et al. distil BERT into small networks)."""
    if kind == "mse":
        return F.mse_loss(student_logits.float(), teacher_logits.float())
    return soft_target_loss(student_logits, teacher_logits, temperature)


def hard_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the examples that have a label (augmented copies carry -1: the teacher's only)."""
    labelled = labels >= 0
    if not bool(labelled.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float()[labelled], labels[labelled])


def hidden_state_loss(
    student_h: torch.Tensor, teacher_h: torch.Tensor, attention_mask: torch.Tensor, kind: str = "mse"
) -> torch.Tensor:
    """Mean squared error (``mse``) or 1 - cosine similarity (``cosine``) per real token, averaged, in fp32.
    Sentence vectors ([batch, width]) are one token each."""
    student_h, teacher_h = student_h.float(), teacher_h.float()
    if kind == "cosine":
        per_token = 1 - F.cosine_similarity(student_h, teacher_h, dim=-1)
    else:
        per_token = ((student_h - teacher_h) ** 2).mean(-1)
    tokens = attention_mask.to(per_token.dtype)
    return (per_token * tokens).sum() / tokens.sum().clamp_min(1)


def teacher_sentence_vector(teacher_out) -> torch.Tensor:
    """The teacher's sentence vector: its last layer's [CLS] state (cached, or from its hidden states)."""
    cached = getattr(teacher_out, "cls", None)
    return cached if cached is not None else teacher_out.hidden_states[-1][:, 0]


class DistillationLoss(nn.Module):
    """The weighted sum of the four terms. Holds the learned projections used when widths differ.

    ``layer_map[i]`` is the teacher layer (0-based) matched by student layer i; ``teacher_heads[i]`` optionally
    names the teacher heads matched by student layer i's heads (e.g. after head pruning). A student without
    layers to match (a BiLSTM / TextCNN: ``layer_map`` empty) has its sentence vector matched instead.
    """

    def __init__(
        self,
        cfg: DistillConfig,
        layer_map: list[int],
        student_hidden: int,
        teacher_hidden: int,
        teacher_heads: list[list[int] | None] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.layer_map = layer_map
        self.teacher_heads = teacher_heads or [None] * len(layer_map)
        w = cfg.weights
        self.sentence = not layer_map  # classic students: their pooled vector against the teacher's [CLS]
        self.projections = (
            nn.ModuleList(nn.Linear(student_hidden, teacher_hidden) for _ in (layer_map or [None]))
            if w.hidden and student_hidden != teacher_hidden
            else None
        )

    @property
    def needs_attentions(self) -> bool:
        return bool(self.cfg.weights.attention)

    @property
    def needs_hidden_states(self) -> bool:
        return bool(self.cfg.weights.hidden)

    def _sentence_term(self, student_out, teacher_out) -> torch.Tensor:
        h = student_out.pooled
        if self.projections is not None:
            h = self.projections[0](h)
        t = teacher_sentence_vector(teacher_out)
        return hidden_state_loss(h, t, torch.ones(h.shape[0], device=h.device), self.cfg.hidden_loss)

    def forward(
        self,
        student_out,
        teacher_out,
        labels: torch.Tensor,
        attention_mask: torch.Tensor,
        aligned: torch.Tensor | None = None,
    ):
        """``aligned`` (per example) marks where teacher and student saw the same tokens when their tokenizers
        differ; attention and hidden-state terms then use only those examples, over their common width."""
        w = self.cfg.weights
        s_att, t_att = getattr(student_out, "attentions", None), getattr(teacher_out, "attentions", None)
        s_hid, t_hid = (
            getattr(student_out, "hidden_states", None),
            getattr(teacher_out, "hidden_states", None),
        )
        mask = attention_mask
        if aligned is not None and (t_att is not None or t_hid is not None):
            maps = [a for a in (t_att or []) if a is not None]
            teacher_width = maps[0].shape[-1] if maps else next(h for h in t_hid if h is not None).shape[1]
            width = min(attention_mask.shape[1], teacher_width)
            mask = attention_mask[:, :width] * aligned[:, None].to(attention_mask.dtype)
            if s_att is not None:
                s_att = [a[..., :width, :width] for a in s_att]
                t_att = [None if a is None else a[..., :width, :width] for a in t_att]
            if s_hid is not None:
                s_hid = [h[:, :width] for h in s_hid]
                t_hid = [None if h is None else h[:, :width] for h in t_hid]
        terms: dict[str, torch.Tensor] = {}
        if w.ce:
            terms["ce"] = hard_label_loss(student_out.logits, labels)
        if w.kd:
            terms["kd"] = logit_loss(
                student_out.logits, teacher_out.logits, self.cfg.kd_loss, self.cfg.temperature
            )
        if w.attention:
            terms["att"] = torch.stack(
                [
                    attention_transfer_loss(
                        s_att[i],
                        t_att[t],
                        mask,
                        self.cfg.attention_loss,
                        self.teacher_heads[i],
                    )
                    for i, t in enumerate(self.layer_map)
                ]
            ).mean()
        if w.hidden and self.sentence:
            terms["hid"] = self._sentence_term(student_out, teacher_out)
        elif w.hidden:
            losses = []
            for i, t in enumerate(self.layer_map):
                h = s_hid[i + 1]  # [0] is the embedding output
                if self.projections is not None:
                    h = self.projections[i](h)
                losses.append(hidden_state_loss(h, t_hid[t + 1], mask, self.cfg.hidden_loss))
            terms["hid"] = torch.stack(losses).mean()
        weights = {"ce": w.ce, "kd": w.kd, "att": w.attention, "hid": w.hidden}
        total = sum(weights[k] * v for k, v in terms.items())
        parts = {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
        return total, parts
