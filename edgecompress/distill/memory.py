"""The frozen teacher's outputs, kept after it first reads a text and recalled when it reads the same again.

The teacher is in eval mode, so its logits, attention maps and hidden states for one input never change:
later epochs (and the prune stage's recovery rounds) read them back instead of running the teacher again.
Entries are keyed by what the teacher actually read - a digest of the row's real (unpadded) token ids and
token types - never by the example's position in the transfer set: a recovery round draws its augmented copies
from another seed, so position i holds another text there, and a recall by position would hand the losses the
outputs of the old text. Only the layers the losses use are kept, unpadded, in the training precision, within
a memory budget; a batch with any input not kept is read by the teacher again.
Measured on bert_to_tiny (bf16, 2 cores): the teacher's forward is about a fifth of a distillation step.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


class TeacherOutputs:
    """What the losses read from a teacher forward: ``logits``, ``attentions[t]``, ``hidden_states[t]``
    (None for the layers nobody asked for)."""

    def __init__(self, logits, attentions, hidden_states):
        self.logits, self.attentions, self.hidden_states = logits, attentions, hidden_states


def input_keys(inputs: dict[str, torch.Tensor]) -> list[bytes]:
    """One digest per row of a (right-padded) teacher batch: its real token ids and token types."""
    lengths = inputs["attention_mask"].sum(1).tolist()
    ids = inputs["input_ids"].cpu().numpy().astype(np.int64)
    types = inputs.get("token_type_ids")
    types = None if types is None else types.cpu().numpy().astype(np.int64)
    keys = []
    for b, n in enumerate(lengths):
        digest = hashlib.blake2b(ids[b, :n].tobytes(), digest_size=16)
        if types is not None:
            digest.update(types[b, :n].tobytes())
        keys.append(digest.digest())
    return keys


class TeacherMemory:
    def __init__(self, budget_mb: float, attention_layers: list[int], hidden_layers: list[int]):
        self.budget = budget_mb * 1e6
        self.attention_layers = sorted(set(attention_layers))  # teacher layers whose maps are kept
        self.hidden_layers = sorted(set(hidden_layers))  # indices into hidden_states (0 = embeddings)
        self.bytes = 0
        self.kept: dict[bytes, tuple] = {}  # input digest -> (logits, {layer: map}, {index: states})
        self.recalled = self.read = 0  # batches served from memory / read by the teacher

    def covers(self, attention_layers, hidden_layers) -> bool:
        return set(attention_layers) <= set(self.attention_layers) and set(hidden_layers) <= set(
            self.hidden_layers
        )

    def keep(self, keys: list[bytes], out, attention_mask: torch.Tensor) -> None:
        """Keep each input's outputs from a batch the teacher just read (while the budget lasts)."""
        lengths = attention_mask.sum(1).tolist()
        for b, (key, n) in enumerate(zip(keys, lengths, strict=True)):
            if key in self.kept or self.bytes >= self.budget:
                continue
            entry = (
                out.logits[b].detach().clone(),
                {t: out.attentions[t][b, :, :n, :n].detach().clone() for t in self.attention_layers},
                {t: out.hidden_states[t][b, :n].detach().clone() for t in self.hidden_layers},
            )
            self.kept[key] = entry
            self.bytes += sum(
                x.numel() * x.element_size() for x in (entry[0], *entry[1].values(), *entry[2].values())
            )

    def recall(self, keys: list[bytes], width: int, n_layers: int) -> TeacherOutputs | None:
        """The batch's outputs padded to ``width`` tokens, or None when any input was not kept."""
        if any(k not in self.kept for k in keys):
            self.read += 1
            return None
        self.recalled += 1
        entries = [self.kept[k] for k in keys]
        logits = torch.stack([e[0] for e in entries])
        attentions = [None] * n_layers
        for t in self.attention_layers:
            maps = [e[1][t] for e in entries]
            padded = maps[0].new_zeros(len(maps), maps[0].shape[0], width, width)
            for b, m in enumerate(maps):
                padded[b, :, : m.shape[1], : m.shape[2]] = m
            attentions[t] = padded
        hidden = [None] * (n_layers + 1)
        for t in self.hidden_layers:
            states = [e[2][t] for e in entries]
            padded = states[0].new_zeros(len(states), width, states[0].shape[-1])
            for b, s in enumerate(states):
                padded[b, : s.shape[0]] = s
            hidden[t] = padded
        return TeacherOutputs(logits, attentions, hidden)

    def record(self) -> dict:
        return {
            "examples_kept": len(self.kept),
            "mb": round(self.bytes / 1e6, 1),
            "batches_from_memory": self.recalled,
            "batches_read_by_the_teacher": self.read,
        }
