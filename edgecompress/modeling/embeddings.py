"""Smaller embedding tables: a low-rank factorised word table and a position table cut to the inputs' length.

For a small student the word-embedding table is most of the file (30522 x 384 floats in MiniLM). ALBERT's
factorisation replaces it with a ``vocab x rank`` table and a ``rank x hidden`` projection; here both are
initialised from the truncated SVD of the distilled table, so the model starts where it was and the prune
stage's recovery distillation does the rest. The checkpoint keeps BERT's layout otherwise and records
``edgecompress_embedding_rank`` in its config (reload it with ``modeling.loading.load_saved_classifier``); its
ONNX export has the same inputs and outputs as any BERT classifier, so Optimum's ORTModel and pipelines load
it as they do the others.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecompress.modeling.encoders import adapter_for

EMBEDDING_RANK = "edgecompress_embedding_rank"  # config key


class FactorizedEmbedding(nn.Module):
    """``table`` (vocab x rank) looked up, then ``project`` (rank -> hidden, no bias)."""

    def __init__(self, num_embeddings: int, rank: int, embedding_dim: int, padding_idx: int | None = None):
        super().__init__()
        self.table = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx)
        self.project = nn.Linear(rank, embedding_dim, bias=False)

    @property
    def num_embeddings(self) -> int:
        return self.table.num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.project.out_features

    @property
    def weight(self) -> torch.Tensor:
        """The full table it stands for (vocab x hidden), as a value: what vocabulary tools read."""
        return self.project(self.table.weight)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.table(input_ids))


def factorize_word_embeddings(model: nn.Module, rank: int) -> dict:
    """Replace the model's word-embedding table by its rank-``rank`` SVD factors; returns what was done."""
    old = model.get_input_embeddings()
    if isinstance(old, FactorizedEmbedding):
        raise ValueError("the word embeddings are already factorised")
    weight = old.weight.detach().float()
    vocab, hidden = weight.shape
    if not 0 < rank < hidden:
        raise ValueError(f"rank {rank} must be between 1 and the hidden width {hidden} (exclusive)")
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    new = FactorizedEmbedding(vocab, rank, hidden, padding_idx=old.padding_idx).to(weight.device)
    with torch.no_grad():
        new.table.weight.copy_(u[:, :rank] * s[:rank])
        new.project.weight.copy_(vh[:rank].T)
    model.set_input_embeddings(new)
    setattr(model.config, EMBEDDING_RANK, rank)
    energy = float((s[:rank] ** 2).sum() / (s**2).sum())
    return {
        "rank": rank,
        "table": [vocab, rank],
        "projection": [rank, hidden],
        "svd_energy_kept": round(energy, 4),
    }


def restore_factorized(model: nn.Module) -> None:
    """Give a model built from a config with ``edgecompress_embedding_rank`` its factorised table (untrained;
    the checkpoint's weights are loaded afterwards)."""
    rank = getattr(model.config, EMBEDDING_RANK, None)
    if rank:
        old = model.get_input_embeddings()
        model.set_input_embeddings(
            FactorizedEmbedding(old.num_embeddings, rank, old.embedding_dim, padding_idx=old.padding_idx)
        )


def trim_positions(model: nn.Module, length: int) -> dict:
    """Keep the rows of the position table that inputs of ``length`` tokens use (inputs are truncated to that
    many): the first ``length``, plus the rows before position 0 in RoBERTa-style tables (padding index + 1),
    whose real tokens start after the padding row."""
    adapter = adapter_for(model, "prune", "prune.embeddings.trim_positions")
    table = adapter.embedding(model, "position_embeddings")
    if table is None:
        return {}
    rows = length + adapter.position_offset(model.config)
    if rows >= table.num_embeddings:
        return {"positions": table.num_embeddings}
    new = nn.Embedding(rows, table.embedding_dim, padding_idx=table.padding_idx).to(table.weight.device)
    with torch.no_grad():
        new.weight.copy_(table.weight[:rows])
    adapter.set_embedding(model, "position_embeddings", new)
    emb = model.base_model.embeddings
    for buffer in ("position_ids", "token_type_ids"):
        if hasattr(emb, buffer):
            setattr(emb, buffer, getattr(emb, buffer)[:, :rows].clone())
    model.config.max_position_embeddings = rows
    return {"positions": rows, "positions_before": table.num_embeddings}
