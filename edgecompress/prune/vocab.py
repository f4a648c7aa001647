"""Vocabulary trimming: for a small student the embedding table is most of the file.

Keeps the word-pieces seen in the training split (at least ``min_frequency`` times), the special tokens and
every single-character piece (so any text still tokenises, just into smaller pieces), then rewrites the
tokenizer and the embedding rows consistently. WordPiece (BERT-style) tokenizers only.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from edgecompress.errors import RecipeError, StageError


def _is_single_char(token: str) -> bool:
    return len(token) == 1 or (token.startswith("##") and len(token) == 3)


def kept_token_ids(
    tokenizer, texts: list[str], pairs: list[str] | None, max_length: int, min_frequency: int
) -> list[int]:
    counts: Counter[int] = Counter()
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    for ids in enc["input_ids"]:
        counts.update(ids)
    vocab = tokenizer.get_vocab()
    keep = {i for i, c in counts.items() if c >= min_frequency}
    keep |= set(tokenizer.all_special_ids)
    keep |= {i for tok, i in vocab.items() if _is_single_char(tok)}
    return sorted(keep)


def trim_vocabulary(model: nn.Module, tokenizer, keep: list[int]):
    """Slice the word-embedding rows to ``keep`` (old ids, ascending) and build the matching tokenizer."""
    from transformers import AutoTokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordPiece":
        raise RecipeError(
            "vocabulary trimming supports WordPiece (BERT-style) tokenizers only", where="prune.vocab.enabled"
        )
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    new_id = {old: new for new, old in enumerate(keep)}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / "tokenizer.json").unlink(missing_ok=True)  # rebuilt from vocab.txt below
        (Path(tmp) / "vocab.txt").write_text("".join(id_to_token[i] + "\n" for i in keep), encoding="utf-8")
        # special tokens are pinned to their ids in tokenizer_config.json: move them to the new ids
        config_path = Path(tmp) / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        decoder = config.get("added_tokens_decoder", {})
        config["added_tokens_decoder"] = {
            str(new_id[int(k)]): v for k, v in decoder.items() if int(k) in new_id
        }
        config_path.write_text(json.dumps(config, indent=2))
        new_tokenizer = AutoTokenizer.from_pretrained(tmp)
    for token in tokenizer.all_special_tokens:
        old, new = tokenizer.convert_tokens_to_ids(token), new_tokenizer.convert_tokens_to_ids(token)
        if new_id.get(old) != new:
            raise StageError(
                f"special token {token} maps to {new}, expected {new_id.get(old)}", where="prune.vocab"
            )
    embeddings = model.get_input_embeddings()
    index = torch.tensor(keep, dtype=torch.long)
    new = nn.Embedding(len(keep), embeddings.embedding_dim, padding_idx=None)
    with torch.no_grad():
        new.weight.copy_(embeddings.weight[index])
    model.set_input_embeddings(new)
    model.config.vocab_size = len(keep)
    if new_tokenizer.pad_token_id is not None:
        model.config.pad_token_id = new_tokenizer.pad_token_id
        new.padding_idx = new_tokenizer.pad_token_id
    return new_tokenizer
