"""Tiny tokenizers of each kind (WordPiece, byte-level BPE, Unigram), trained in the test run with the
``tokenizers`` trainers on a few dozen sentences, and tiny random classifiers of the families that use them.

No downloads; each builder takes well under a second.
"""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = ["the film", "this movie", "our story", "the cast", "a sequel", "the director", "its music"]
VERBS = ["was", "felt", "seemed", "became", "remained", "looked"]
ADJECTIVES = [
    "wonderful",
    "terrible",
    "charming",
    "tedious",
    "brilliant",
    "clumsy",
    "thoughtful",
    "predictable",
    "heartwarming",
    "unwatchable",
]
TAILS = ["today.", "again!", "overall.", "to me.", "at times.", "in places?", "from start to finish."]


def corpus(n: int = 48, seed: int = 0) -> list[str]:
    """``n`` short review sentences (a few dozen distinct words, punctuation, a digit or two)."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(ADJECTIVES)} "
        f"{rng.choice(TAILS)} {i % 7}"
        for i in range(n)
    ]


UNSEEN = "Zany Quixotic zephyrs jumped: ÉTÉ 2024 ☃ naïve!"  # words and characters no sentence has

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # fairseq order: pad 1
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _wordpiece(specials: list[str], unk: str, texts: list[str], vocab_size: int = 160):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    return tok


def _byte_bpe(texts: list[str], specials: list[str] | None, vocab_size: int = 480):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials or [],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def _unigram(texts: list[str], specials: list[str], unk: str, vocab_size: int = 120):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=unk)
    tok.train_from_iterator(texts, trainer)
    return tok


def _template(tok, cls: str, sep: str, pair_sep: str) -> None:
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} {pair_sep}$B:1 {sep}:1",
        special_tokens=[(t, tok.token_to_id(t)) for t in dict.fromkeys([cls, sep])],
    )


def bert_tokenizer(texts: list[str]):
    """BERT: WordPiece, [PAD] 0, TemplateProcessing."""
    from transformers import BertTokenizerFast

    tok = _wordpiece(BERT_SPECIALS, "[UNK]", texts)
    _template(tok, "[CLS]", "[SEP]", "")
    return BertTokenizerFast(tokenizer_object=tok, **_bert_special_kwargs())


def _bert_special_kwargs() -> dict:
    return {
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }


def distilbert_tokenizer(texts: list[str]):
    """DistilBERT reusing BERT's tokenizer class (as many checkpoints do): returns token_type_ids the model
    refuses. BertProcessing post-processor."""
    from tokenizers import processors
    from transformers import BertTokenizerFast

    tok = _wordpiece(BERT_SPECIALS, "[UNK]", texts)
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]"))
    )
    return BertTokenizerFast(tokenizer_object=tok, **_bert_special_kwargs())


def mpnet_tokenizer(texts: list[str], fast_class: bool = True):
    """MPNet: WordPiece with fairseq-style specials (<pad> 1, the hard-coded padding row)."""
    from transformers import MPNetTokenizerFast, PreTrainedTokenizerFast

    tok = _wordpiece(ROBERTA_SPECIALS, "<unk>", texts)
    _template(tok, "<s>", "</s>", "</s> ")
    cls = MPNetTokenizerFast if fast_class else PreTrainedTokenizerFast
    return cls(tokenizer_object=tok, **_roberta_special_kwargs())


def _roberta_special_kwargs() -> dict:
    return {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "mask_token": "<mask>",
    }


def roberta_tokenizer(texts: list[str], fast_class: bool = True):
    """RoBERTa: byte-level BPE, specials first (<pad> 1), RobertaProcessing. ``fast_class=False`` wraps it in
    PreTrainedTokenizerFast, as a tokenizer saved from the ``tokenizers`` library loads: it returns
    token_type_ids, which RoBERTa graphs do not take."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, RobertaTokenizerFast

    tok = _byte_bpe(texts, ROBERTA_SPECIALS)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    cls = RobertaTokenizerFast if fast_class else PreTrainedTokenizerFast
    return cls(tokenizer_object=tok, **_roberta_special_kwargs())


def modernbert_tokenizer(texts: list[str]):
    """ModernBERT: byte-level BPE with the specials appended after the learned vocabulary (so trimming moves
    them), a Sequence post-processor, and PreTrainedTokenizerFast."""
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    tok = _byte_bpe(texts, None)
    tok.add_special_tokens([AddedToken(t, special=True) for t in BERT_SPECIALS])
    template = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_input_names=["input_ids", "attention_mask"], **_bert_special_kwargs()
    )


def xlmr_tokenizer(texts: list[str]):
    """XLM-R: Unigram with Metaspace, fairseq specials (<pad> 1), TemplateProcessing."""
    from transformers import XLMRobertaTokenizerFast

    tok = _unigram(texts, ROBERTA_SPECIALS, "<unk>")
    _template(tok, "<s>", "</s>", "</s> ")
    return XLMRobertaTokenizerFast(tokenizer_object=tok, **_roberta_special_kwargs())


def deberta_tokenizer(texts: list[str]):
    """DeBERTa-v3: Unigram with [PAD] 0 .. [UNK] 3 and [MASK] added after the pieces (an added token outside
    the Unigram list); returns token_type_ids."""
    from tokenizers import AddedToken
    from transformers import DebertaV2TokenizerFast

    tok = _unigram(texts, ["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[UNK]")
    tok.add_special_tokens([AddedToken("[MASK]", special=True)])
    _template(tok, "[CLS]", "[SEP]", "")
    return DebertaV2TokenizerFast(tokenizer_object=tok, **_bert_special_kwargs())


TOKENIZERS = {
    "bert": bert_tokenizer,
    "distilbert": distilbert_tokenizer,
    "mpnet": mpnet_tokenizer,
    "roberta": roberta_tokenizer,
    "modernbert": modernbert_tokenizer,
    "xlm-roberta": xlmr_tokenizer,
    "deberta-v2": deberta_tokenizer,
}
KIND = {
    "bert": "WordPiece",
    "distilbert": "WordPiece",
    "mpnet": "WordPiece",
    "roberta": "BPE",
    "modernbert": "BPE",
    "xlm-roberta": "Unigram",
    "deberta-v2": "Unigram",
}


def tiny_config(family: str, tokenizer, num_labels: int = 2):
    """A 2-layer, hidden-32, 4-head config of ``family`` whose special ids are the tokenizer's."""
    from transformers import AutoConfig

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if family == "modernbert":
        cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        ids = {**ids, "cls_token_id": cls, "sep_token_id": sep, "bos_token_id": cls, "eos_token_id": sep}
    sizes = {
        "distilbert": {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 4},
        "modernbert": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "reference_compile": False,
        },
    }.get(
        family,
        {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    )
    positions = 66 if family in ("roberta", "xlm-roberta", "mpnet") else 64  # + pad + 1 rows for the offset
    if family in ("roberta", "xlm-roberta"):
        sizes = {**sizes, "type_vocab_size": 1}  # as their checkpoints (the config class default is 2)
    return AutoConfig.for_model(
        family,
        vocab_size=len(tokenizer),
        max_position_embeddings=positions,
        num_labels=num_labels,
        **sizes,
        **{k: v for k, v in ids.items() if v is not None},
    )


def tiny_classifier(family: str, tokenizer, seed: int = 0):
    """A random sequence classifier of ``family`` (eager attention) sized to ``tokenizer``."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    config = tiny_config(family, tokenizer)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="eager").eval()


def save_family(folder: Path, family: str, texts: list[str], tokenizer=None):
    """A tiny classifier of ``family`` saved with its tokenizer, as a user's model folder; (model, tokenizer)."""
    tokenizer = tokenizer or TOKENIZERS[family](texts)
    model = tiny_classifier(family, tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return model, tokenizer
