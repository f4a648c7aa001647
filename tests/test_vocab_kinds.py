"""Vocabulary trimming for every tokenizer kind (WordPiece, byte-level BPE, Unigram): exact on the training texts,
still reads unseen text, leaves no stale vocabulary file, keeps pinned pad ids, remaps the config's special ids,
and refuses (one line, full vocabulary kept) what it cannot do exactly."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny_tokenizers import KIND, TOKENIZERS, UNSEEN, corpus, tiny_classifier

from edgecompress.errors import VocabTrimError
from edgecompress.prune import vocab
from edgecompress.prune.stage import trim_for_student

TEXTS = corpus()
TRAIN, PAIRS = TEXTS[:8], TEXTS[8:16]  # trimmed to what these use; the other sentences are unseen text


def trimmed(family: str, min_frequency: int = 1, pairs=PAIRS):
    """(full tokenizer, full model, trimmed tokenizer, trimmed model, kept old ids) for ``family``."""
    tok = TOKENIZERS[family](TEXTS)
    model = tiny_classifier(family, tok)
    full = copy.deepcopy(model)
    keep = vocab.kept_token_ids(tok, TRAIN, pairs, 64, min_frequency)
    keep = sorted(set(keep) | vocab.model_kept_ids(model.config))
    new = vocab.trim_vocabulary(model, tok, keep, TRAIN, pairs, 64)
    return tok, full, new, model, keep


def logits(model, tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


@pytest.mark.parametrize("family", list(TOKENIZERS))
def test_trimmed_tokenisation_equals_full_up_to_renumbering(family):
    tok, full, new, model, keep = trimmed(family)
    assert vocab.tokenizer_kind(tok).name == KIND[family]
    assert type(new) is type(tok)
    assert len(new) == len(keep) < len(tok)
    remap = {old: i for i, old in enumerate(keep)}
    for texts, pairs in ((TRAIN, None), (TRAIN, PAIRS)):
        before = tok(texts, pairs, truncation=True, max_length=64)["input_ids"]
        after = new(texts, pairs, truncation=True, max_length=64)["input_ids"]
        assert after == [[remap[i] for i in row] for row in before]
    # the embedding rows followed the ids: the same logits from the smaller table
    assert torch.allclose(logits(model, new, TRAIN), logits(full, tok, TRAIN), atol=1e-6)
    assert model.get_input_embeddings().num_embeddings == len(keep) == model.config.vocab_size
    # text with words and characters no training text has still tokenises and runs
    unseen = new([UNSEEN, *TEXTS[16:]])["input_ids"]
    assert all(0 <= i < len(new) for row in unseen for i in row)
    logits(model, new, [UNSEEN])


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta"])
def test_rare_pieces_are_dropped_and_the_rest_stays_exact(family):
    """min_frequency 2: pieces seen once go (their texts change by design), every other text reads the same."""
    tok, _, new, _, keep = trimmed(family, min_frequency=2, pairs=None)
    _, _, new1, _, keep1 = trimmed(family, min_frequency=1, pairs=None)
    assert len(keep) < len(keep1)
    remap = {old: i for i, old in enumerate(keep)}
    for text in TRAIN:
        before = tok(text)["input_ids"]
        if all(i in remap for i in before):
            assert new(text)["input_ids"] == [remap[i] for i in before]


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "mpnet"])
def test_position_offset_families_keep_their_pad_id(family):
    tok, _, new, model, _ = trimmed(family)
    assert new.pad_token_id == tok.pad_token_id == model.config.pad_token_id == 1
    assert model.get_input_embeddings().padding_idx == 1
    enc = new(TRAIN, padding=True, return_tensors="pt")
    with torch.no_grad():  # positions (cumsum after the pad id) still fit the table
        model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])


def test_a_pinned_pad_id_that_would_move_is_refused_before_the_model_changes():
    tok = TOKENIZERS["roberta"](TEXTS)
    model = tiny_classifier("roberta", tok)
    keep = [i for i in vocab.kept_token_ids(tok, TRAIN, None, 64, 1) if i != 0]
    rows = model.get_input_embeddings().num_embeddings
    with pytest.raises(VocabTrimError) as err:
        vocab.trim_vocabulary(model, tok, keep, TRAIN)
    assert "\n" not in str(err.value) and str(err.value).startswith("prune.vocab:")
    assert model.get_input_embeddings().num_embeddings == rows == model.config.vocab_size


def test_specials_at_the_end_move_and_the_config_follows():
    """ModernBERT-style: the specials sit after the learned vocabulary, so trimming moves them; every special id
    the config names moves with them."""
    tok, _, new, model, _ = trimmed("modernbert")
    config = model.config
    for key, token in (("pad_token_id", "[PAD]"), ("cls_token_id", "[CLS]"), ("sep_token_id", "[SEP]")):
        assert getattr(config, key) == new.convert_tokens_to_ids(token) < tok.convert_tokens_to_ids(token)
    assert (config.bos_token_id, config.eos_token_id) == (config.cls_token_id, config.sep_token_id)
    assert new(TRAIN[0])["input_ids"][0] == config.cls_token_id


def _vocabulary_files(folder: Path) -> dict[str, int]:
    """Entries in each vocabulary file the folder holds."""
    sizes = {}
    for name in ("vocab.txt", "vocab.json", "merges.txt"):
        path = folder / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            sizes[name] = len(json.loads(text)) if name.endswith(".json") else len(text.splitlines())
    return sizes


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta"])
def test_no_stale_vocabulary_file_and_the_folder_reloads(family, tmp_path):
    from transformers import AutoTokenizer

    source = tmp_path / "full"
    TOKENIZERS[family](TEXTS).save_pretrained(source)
    if family == "xlm-roberta":  # real checkpoints carry the SentencePiece file beside tokenizer.json
        (source / "sentencepiece.bpe.model").write_bytes(b"stale full vocabulary")
    tok = AutoTokenizer.from_pretrained(source)
    model = tiny_classifier(family, tok)
    keep = sorted(set(vocab.kept_token_ids(tok, TRAIN, None, 64, 1)) | vocab.model_kept_ids(model.config))
    new = vocab.trim_vocabulary(model, tok, keep, TRAIN)
    out = tmp_path / "trimmed"
    new.save_pretrained(out)
    assert not list(out.glob("*.model"))
    backend = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    sizes = _vocabulary_files(out)
    if "vocab.txt" in sizes:
        assert sizes["vocab.txt"] == len(keep)
    if "vocab.json" in sizes:
        assert sizes["vocab.json"] == len(backend["vocab"]) < len(tok)
        assert sizes["merges.txt"] == len(backend["merges"]) + 1  # a "#version" header line
    reloaded = AutoTokenizer.from_pretrained(out)
    assert type(reloaded) is type(tok) and len(reloaded) == len(keep)
    assert reloaded(TEXTS)["input_ids"] == new(TEXTS)["input_ids"]


def test_an_unk_words_greedy_path_is_kept():
    """WordPiece: 'abc' is [UNK] (ab, then no ##c); dropping the unused 'ab' would let 'a ##bc' segment it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertTokenizerFast

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "x", "ab", "##b", "##bc"]
    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(pieces)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok = BertTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    texts = ["abc xbc"]
    assert tok.tokenize(texts[0]) == ["[UNK]", "x", "##bc"]
    keep = vocab.kept_token_ids(tok, texts, None, 16, 1)
    assert tok.convert_tokens_to_ids("ab") in keep
    new = vocab.trimmed_tokenizer(tok, keep)
    assert new.tokenize(texts[0]) == ["[UNK]", "x", "##bc"]


class _Data:
    def texts(self, _split):
        return TRAIN, None


PRUNE = SimpleNamespace(vocab=SimpleNamespace(enabled=True, min_frequency=1))


def _naive_bpe(model: dict, _kept, _words) -> set[str]:
    """The bytes only, no merge closure: the used tokens' intermediate merges are lost (docs/design §3)."""
    from tokenizers.pre_tokenizers import ByteLevel

    return set(ByteLevel.alphabet()) & model["vocab"].keys()


def test_an_inexact_trim_is_one_line_and_the_stage_keeps_the_full_vocabulary(monkeypatch):
    monkeypatch.setitem(vocab.KINDS._items, "BPE", vocab.TokenizerKind("BPE", _naive_bpe, vocab._bpe_rewrite))
    tok = TOKENIZERS["roberta"](TEXTS)
    model = tiny_classifier("roberta", tok)
    keep = vocab.kept_token_ids(tok, TRAIN, None, 64, 1)
    with pytest.raises(VocabTrimError) as err:
        vocab.trim_vocabulary(model, tok, keep, TRAIN)
    line = str(err.value)
    assert (
        "\n" not in line and "BPE" in line and repr(TRAIN[0]) in line
    )  # the first text it reads differently
    lines: list[str] = []
    student_tok, record = trim_for_student(PRUNE, model, tok, _Data(), 64, lines.append)
    assert student_tok is tok and record["after"] == record["before"] == len(tok)
    assert record["kept_full"] == line and lines == [f"warning: {line}; keeping the full vocabulary"]
    assert model.get_input_embeddings().num_embeddings == len(tok) == model.config.vocab_size


def test_a_tokenizer_kind_without_rules_is_one_line():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", *dict.fromkeys(" ".join(TEXTS).split())]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    with pytest.raises(VocabTrimError) as err:
        vocab.kept_token_ids(tok, TRAIN, None, 64, 1)
    assert "\n" not in str(err.value) and "WordLevel" in str(err.value)
    model = tiny_classifier("bert", tok)
    lines: list[str] = []
    student_tok, record = trim_for_student(PRUNE, model, tok, _Data(), 64, lines.append)
    assert student_tok is tok and "WordLevel" in record["kept_full"] and len(lines) == 1


def test_the_report_says_the_vocabulary_was_kept_whole():
    from edgecompress.report.stage import pruning_section

    line = "prune.vocab: no trimming rules for WordLevel tokenizers (known: WordPiece, BPE, Unigram)"
    rec = {"params_before": 1e6, "params_after": 1e6, "vocab": {"before": 9, "after": 9, "min_frequency": 1}}
    assert "Vocabulary 9 -> 9 word-pieces" in "\n".join(pruning_section(rec))
    rec["vocab"]["kept_full"] = line
    assert f"Vocabulary kept whole (9 word-pieces): {line}." in pruning_section(rec)


def test_wordpiece_trimming_is_the_tokenizer_its_trimmed_vocab_txt_builds(tiny_teacher, tmp_path):
    """The BERT path is what it was (a tokenizer rebuilt from the kept word-pieces' vocab.txt), byte for byte."""
    from transformers import AutoTokenizer, BertTokenizerFast

    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    texts = ["the movie was great 3", "boring and dull plot", "zebra"]
    keep = vocab.kept_token_ids(tok, texts, None, 16, 1)
    model = tiny_classifier("bert", tok)
    new = vocab.trim_vocabulary(model, tok, keep, texts, None, 16)
    id_to_token = {i: t for t, i in tok.get_vocab().items()}
    (tmp_path / "vocab.txt").write_text("".join(id_to_token[i] + "\n" for i in keep), encoding="utf-8")
    rebuilt = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), do_lower_case=True)
    assert new.backend_tokenizer.to_str() == rebuilt.backend_tokenizer.to_str()


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_trimmed_vocabulary_and_trimmed_positions_compose(family):
    """As the prune stage does: the vocabulary, then the position table (pad id + 1 rows before position 0, the
    pad id trimming kept); the logits of truncated inputs do not move."""
    from edgecompress.prune.config import EmbeddingShrinkConfig
    from edgecompress.prune.stage import shrink_embeddings

    tok = TOKENIZERS[family](TEXTS)
    model = tiny_classifier(family, tok)
    full = copy.deepcopy(model)
    new, record = trim_for_student(PRUNE, model, tok, _Data(), 24)
    assert record["after"] < record["before"] and "kept_full" not in record
    done = shrink_embeddings(model, new, EmbeddingShrinkConfig(trim_positions=True), 24)
    assert done["positions"] == 24 + 2 < done["positions_before"]
    enc_full = tok(TRAIN, truncation=True, max_length=24, padding=True, return_tensors="pt")
    enc_new = new(TRAIN, truncation=True, max_length=24, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = full(input_ids=enc_full["input_ids"], attention_mask=enc_full["attention_mask"]).logits
        got = model(input_ids=enc_new["input_ids"], attention_mask=enc_new["attention_mask"]).logits
    assert torch.allclose(got, want, atol=1e-6)
