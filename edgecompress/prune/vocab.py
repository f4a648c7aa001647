"""Vocabulary trimming: for a small student the embedding table is most of the file.

Keeps the pieces seen in the training split (at least ``min_frequency`` times), the special and added tokens, and
what the tokenizer's algorithm needs to segment those texts the same way and still read any text (the closure
rules of docs/design/encoders.md §3, one entry per backend model in ``KINDS``), then rewrites tokenizer.json and
the embedding rows consistently. The result is checked: a training text whose pieces were all kept must tokenise
to the same pieces. When it does not, or the tokenizer has no trimming rules, a one-line VocabTrimError says so
(and the prune stage keeps the full vocabulary).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from edgecompress.errors import VocabTrimError
from edgecompress.registry import Registry

WHERE = "prune.vocab"
# files save_pretrained writes beside tokenizer.json that would still hold the full vocabulary
STALE_FILES = ("vocab.txt", "vocab.json", "merges.txt", "*.model")
CONFIG_SPECIAL_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id")


@dataclass(frozen=True)
class TokenizerKind:
    """How one tokenizer.json ``model`` type is trimmed: the extra tokens its algorithm needs to segment text
    as before (``closure``), and its model section rewritten for the kept tokens (``{token: new id}``)."""

    name: str
    closure: Callable[[dict, set[str], Callable[[], set[str]]], set[str]]  # (model, kept, training words)
    rewrite: Callable[[dict, dict[str, int]], dict]


KINDS: Registry[TokenizerKind] = Registry("tokenizer kind")


# --- WordPiece (BERT, DistilBERT, ELECTRA, MPNet) ---------------------------------------------------------------


def _is_single_char(token: str, prefix: str = "##") -> bool:
    return len(token) == 1 or (token.startswith(prefix) and len(token) == len(prefix) + 1)


def greedy_path(word: str, vocab, prefix: str, max_chars: int) -> tuple[list[str], bool]:
    """WordPiece's longest-match pieces of ``word``, and whether they cover it (False: the word is [UNK])."""
    if len(word) > max_chars:
        return [], False
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                break
        else:
            return pieces, False
        start = end
    return pieces, True


def _wordpiece_closure(model: dict, kept: set[str], words: Callable[[], set[str]]) -> set[str]:
    """Every single character and ``##c`` (unseen words still tokenise), and the pieces of the failed greedy
    path of every [UNK] word: without them a smaller vocabulary could segment a word that was [UNK]."""
    vocab, prefix = model["vocab"], model.get("continuing_subword_prefix") or "##"
    out = {t for t in vocab if _is_single_char(t, prefix)}
    for word in words():
        pieces, covered = greedy_path(word, vocab, prefix, model.get("max_input_chars_per_word", 100))
        if not covered:
            out.update(pieces)
    return out


def _token_dict_rewrite(model: dict, new: dict[str, int]) -> dict:
    return {**model, "vocab": {t: new[t] for t in model["vocab"] if t in new}}


KINDS.register("WordPiece")(TokenizerKind("WordPiece", _wordpiece_closure, _token_dict_rewrite))


# --- byte-level BPE (RoBERTa, ModernBERT) -------------------------------------------------------------------------


def _merge_pair(merge) -> tuple[str, str]:
    """tokenizers 0.22 writes merges as pairs; older files as "a b" strings."""
    a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
    return a, b


def _bpe_closure(model: dict, kept: set[str], _words: Callable[[], set[str]]) -> set[str]:
    """The 256 byte symbols (no text is unreadable) and, recursively, both parts of every merge producing a kept
    token: intermediate tokens are never emitted, but their merges are needed to reach the kept ones."""
    from tokenizers.pre_tokenizers import ByteLevel

    producers: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for merge in model["merges"]:
        a, b = _merge_pair(merge)
        producers[a + b].append((a, b))
    out = set(ByteLevel.alphabet()) & model["vocab"].keys()
    stack = list(kept | out)
    while stack:
        for pair in producers.get(stack.pop(), ()):
            for part in pair:
                if part not in out and part not in kept:
                    out.add(part)
                    stack.append(part)
    return out


def _bpe_rewrite(model: dict, new: dict[str, int]) -> dict:
    """The kept tokens, and the merges among them in their original order (their ranks decide segmentation)."""
    merges = [m for m in model["merges"] if all(t in new for t in (*_merge_pair(m), "".join(_merge_pair(m))))]
    return {**_token_dict_rewrite(model, new), "merges": merges}


KINDS.register("BPE")(TokenizerKind("BPE", _bpe_closure, _bpe_rewrite))


# --- Unigram / SentencePiece (XLM-R, DeBERTa-v3) ------------------------------------------------------------------


def _unigram_closure(model: dict, kept: set[str], _words: Callable[[], set[str]]) -> set[str]:
    """Every single-character piece (the lone ▁ included: unk nodes stay where they were), the unk piece, and
    the lowest-score piece, whose score sets the unk penalty (min score - 10)."""
    pieces = model["vocab"]
    out = {p for p, _ in pieces if len(p) == 1}
    out.add(min(pieces, key=lambda ps: ps[1])[0])
    if model.get("unk_id") is not None:
        out.add(pieces[model["unk_id"]][0])
    return out


def _unigram_rewrite(model: dict, new: dict[str, int]) -> dict:
    pieces = [[p, s] for p, s in model["vocab"] if p in new]
    if [new[p] for p, _ in pieces] != list(range(len(pieces))):
        raise VocabTrimError("Unigram pieces would not keep their list order as ids", where=WHERE)
    unk = model.get("unk_id")
    return {**model, "vocab": pieces, "unk_id": None if unk is None else new[model["vocab"][unk][0]]}


KINDS.register("Unigram")(TokenizerKind("Unigram", _unigram_closure, _unigram_rewrite))


# --- the tokenizer side -------------------------------------------------------------------------------------------


def tokenizer_json(tokenizer) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise VocabTrimError(
            f"{type(tokenizer).__name__} has no fast (tokenizers) backend to trim", where=WHERE
        )
    return json.loads(backend.to_str())


def tokenizer_kind(tokenizer) -> TokenizerKind:
    """The trimming rules for the tokenizer's backend model; a VocabTrimError for a kind without rules."""
    name = tokenizer_json(tokenizer)["model"]["type"]
    try:
        return KINDS.get(name)
    except KeyError:
        raise VocabTrimError(
            f"no trimming rules for {name} tokenizers (known: WordPiece, BPE, Unigram)", where=WHERE
        ) from None


def training_words(tokenizer, texts: Iterable[str]) -> set[str]:
    """The normalised, pre-tokenised words of ``texts``: what the backend model segments one at a time."""
    backend = tokenizer.backend_tokenizer
    words = set()
    for text in texts:
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        split = backend.pre_tokenizer.pre_tokenize_str(text) if backend.pre_tokenizer else [(text, None)]
        words.update(w for w, _ in split)
    return words


def kept_token_ids(
    tokenizer, texts: list[str], pairs: list[str] | None, max_length: int, min_frequency: int
) -> list[int]:
    """Old ids to keep, ascending: the pieces seen ``min_frequency`` times, specials, added tokens, and the
    kind's closure."""
    kind = tokenizer_kind(tokenizer)
    counts: Counter[int] = Counter()
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    for ids in enc["input_ids"]:
        counts.update(ids)
    vocab = tokenizer.get_vocab()
    keep = {i for i, c in counts.items() if c >= min_frequency}
    keep |= set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    id_to_token = {i: t for t, i in vocab.items()}
    kept = {id_to_token[i] for i in keep if i in id_to_token}
    words = partial(training_words, tokenizer, [*texts, *(pairs or [])])  # only WordPiece asks for them
    keep |= {vocab[t] for t in kind.closure(tokenizer_json(tokenizer)["model"], kept, words) if t in vocab}
    return sorted(keep)


def _remap_template(proc: dict, new_id: dict[int, int]) -> None:
    for spec in proc["special_tokens"].values():
        spec["ids"] = [new_id[i] for i in spec["ids"]]


def _remap_pair_ids(proc: dict, new_id: dict[int, int]) -> None:
    for key in ("sep", "cls"):
        proc[key] = [proc[key][0], new_id[proc[key][1]]]


def _remap_sequence(proc: dict, new_id: dict[int, int]) -> None:
    for inner in proc["processors"]:
        remap_post_processor(inner, new_id)


POST_PROCESSORS: dict[str, Callable[[dict, dict[int, int]], None]] = {
    "TemplateProcessing": _remap_template,
    "RobertaProcessing": _remap_pair_ids,
    "BertProcessing": _remap_pair_ids,
    "Sequence": _remap_sequence,
}


def remap_post_processor(proc: dict | None, new_id: dict[int, int]) -> None:
    """The special-token ids the post-processor inserts, moved to their new ids (others carry no ids)."""
    if proc:
        POST_PROCESSORS.get(proc["type"], lambda _p, _n: None)(proc, new_id)


def trimmed_json(tokenizer, keep: list[int]) -> dict:
    """tokenizer.json for the kept ids: the model section (per kind), added tokens and post-processor ids."""
    data, kind = tokenizer_json(tokenizer), tokenizer_kind(tokenizer)
    new_id = {old: new for new, old in enumerate(keep)}
    by_token = {t: new_id[i] for t, i in tokenizer.get_vocab().items() if i in new_id}
    data["model"] = kind.rewrite(data["model"], by_token)
    data["added_tokens"] = [{**t, "id": new_id[t["id"]]} for t in data["added_tokens"] if t["id"] in new_id]
    try:
        remap_post_processor(data.get("post_processor"), new_id)
    except KeyError as exc:
        raise VocabTrimError(f"the post-processor inserts id {exc} that is not kept", where=WHERE) from None
    # the backend keeps the truncation / padding of its last call: not part of the vocabulary (export sets its own)
    data["truncation"] = data["padding"] = None
    return data


def trimmed_tokenizer(tokenizer, keep: list[int]):
    """The same tokenizer class over the kept ids only, reloaded from a folder holding no stale vocabulary file."""
    from transformers import AutoTokenizer

    data = trimmed_json(tokenizer, keep)
    new_id = {old: new for new, old in enumerate(keep)}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        for pattern in STALE_FILES:
            for path in Path(tmp).glob(pattern):
                path.unlink()
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        # added tokens are pinned to their ids in tokenizer_config.json: move them to the new ids
        config_path = Path(tmp) / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        decoder = config.get("added_tokens_decoder", {})
        config["added_tokens_decoder"] = {
            str(new_id[int(k)]): v for k, v in decoder.items() if int(k) in new_id
        }
        config_path.write_text(json.dumps(config, indent=2))
        new_tokenizer = AutoTokenizer.from_pretrained(tmp)
    expected = {t: new_id[i] for t, i in tokenizer.get_vocab().items() if i in new_id}
    if new_tokenizer.get_vocab() != expected:
        wrong = next(t for t, i in expected.items() if new_tokenizer.convert_tokens_to_ids(t) != i)
        raise VocabTrimError(
            f"token {wrong} maps to {new_tokenizer.convert_tokens_to_ids(wrong)} after trimming, "
            f"expected {expected[wrong]}",
            where=WHERE,
        )
    return new_tokenizer


def check_exact(
    tokenizer, trimmed, keep: list[int], texts: list[str], pairs: list[str] | None, max_length: int
) -> None:
    """Every text (and pair) whose pieces were all kept tokenises to the same pieces, renumbered; a VocabTrimError
    naming the kind and the first text that does not. Texts holding a piece seen under min_frequency times
    change by design (the piece is spelled out) and are not compared."""
    new_id = {old: new for new, old in enumerate(keep)}
    full = tokenizer(texts, pairs, truncation=True, max_length=max_length)["input_ids"]
    cut = trimmed(texts, pairs, truncation=True, max_length=max_length)["input_ids"]
    trimmed.backend_tokenizer.no_truncation()  # as loaded: the call above left its truncation set
    for i, (before, after) in enumerate(zip(full, cut, strict=True)):
        if all(t in new_id for t in before) and [new_id[t] for t in before] != after:
            text = texts[i] if pairs is None else f"{texts[i]} / {pairs[i]}"
            kind = tokenizer_json(tokenizer)["model"]["type"]
            raise VocabTrimError(
                f"trimming the {kind} vocabulary changes how {text[:80]!r} is tokenised", where=WHERE
            )


# --- the model side -----------------------------------------------------------------------------------------------

# families whose position ids start after the pad id (RoBERTa-style offset): the pad id must not move
PINNED_PAD: dict[str, Callable[[object], int | None]] = {
    "roberta": lambda config: config.pad_token_id,
    "xlm-roberta": lambda config: config.pad_token_id,
    "camembert": lambda config: config.pad_token_id,
    "mpnet": lambda _config: 1,  # padding_idx = 1 is hard-coded in MPNetEmbeddings
}


def pinned_pad_id(config) -> int | None:
    rule = PINNED_PAD.get(getattr(config, "model_type", None))
    return None if rule is None else rule(config)


def model_kept_ids(config) -> set[int]:
    """Ids the model itself needs: the special ids its config names (inside its table), and ids 0..pad where the
    pad id is pinned."""
    rows = getattr(config, "vocab_size", None) or 0
    ids = {v for k in CONFIG_SPECIAL_IDS if isinstance(v := getattr(config, k, None), int) and 0 <= v < rows}
    pad = pinned_pad_id(config)
    return ids | (set(range(pad + 1)) if pad is not None else set())


def check_model_ids(config, keep: list[int]) -> None:
    """The config's special ids are kept, and a pinned pad id keeps its number."""
    kept = set(keep)
    missing = sorted(model_kept_ids(config) - kept)
    if missing:
        raise VocabTrimError(f"the model's special ids {missing} would be trimmed", where=WHERE)
    pad = pinned_pad_id(config)
    if pad is not None and keep.index(pad) != pad:
        raise VocabTrimError(
            f"{config.model_type} ties positions to pad id {pad}, which trimming would move", where=WHERE
        )


def trim_embeddings(model: nn.Module, new_tokenizer, keep: list[int]) -> None:
    """Word-embedding rows ``keep`` (old ids, ascending), config.vocab_size, and the config's special ids remapped."""
    embeddings = model.get_input_embeddings()
    index = torch.tensor(keep, dtype=torch.long)
    new = nn.Embedding(len(keep), embeddings.embedding_dim, padding_idx=None)
    with torch.no_grad():
        new.weight.copy_(embeddings.weight[index])
    model.set_input_embeddings(new)
    config = model.config
    config.vocab_size = len(keep)
    new_id = {old: i for i, old in enumerate(keep)}
    for key in CONFIG_SPECIAL_IDS[1:]:
        value = getattr(config, key, None)
        if isinstance(value, int) and value in new_id:
            setattr(config, key, new_id[value])
    pad = new_tokenizer.pad_token_id
    pad = new_id.get(getattr(config, "pad_token_id", None)) if pad is None else pad
    if pad is not None:
        config.pad_token_id = pad
        new.padding_idx = pad


def trim_vocabulary(
    model: nn.Module,
    tokenizer,
    keep: list[int],
    texts: list[str] | None = None,
    pairs: list[str] | None = None,
    max_length: int = 512,
):
    """Slice the word-embedding rows to ``keep`` (old ids, ascending) and build the matching tokenizer. With
    ``texts`` the trimmed tokenizer must read them as the full one does (check_exact); the model is changed only
    once every check has passed."""
    check_model_ids(model.config, keep)
    new_tokenizer = trimmed_tokenizer(tokenizer, keep)
    if texts is not None:
        check_exact(tokenizer, new_tokenizer, keep, texts, pairs, max_length)
    trim_embeddings(model, new_tokenizer, keep)
    return new_tokenizer
