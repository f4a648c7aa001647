"""Probe: what an edgecompress model-family adapter needs, verified on the installed stack.

For each family (bert, electra, roberta, xlm-roberta, distilbert, deberta-v2, mpnet, modernbert, albert):
a tiny random XForSequenceClassification (eager attention) and a tiny tokenizer of the family's real kind,
trained here with the `tokenizers` trainers and wrapped in the family's transformers fast class;
forward with attentions / hidden states; module paths; head + FFN-unit removal checked against zeroing;
config.pruned_heads reload; vocabulary trimming checked by retokenisation; Optimum ONNX export, onnxruntime
and ORTModelForSequenceClassification parity; ONNX node names and edgecompress's int8-guard node groups.

Run: /work/main/.venv/bin/python /work/notes/encoders_probe.py > /work/notes/encoders_probe.out 2>&1
Tiny on purpose (hidden 32, 2 layers, 4 heads): it trains nothing and runs in about a minute on 1 thread.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from torch import nn  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402
from transformers import logging as hf_logging  # noqa: E402
from transformers.pytorch_utils import prune_linear_layer  # noqa: E402

hf_logging.set_verbosity_error()
logging.getLogger("optimum").setLevel(logging.ERROR)
torch.set_num_threads(1)
torch.manual_seed(0)
sys.path.insert(0, "/work/main")  # for edgecompress.quantize.guard.node_groups (read only)

T0 = time.time()

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A movie that is both charming and deeply moving.",
    "I did not like this film at all, it was boring!",
    "Unbelievably good: the acting, the music, the story.",
    "Terrible plot; wooden dialogue and a predictable ending.",
    "She said it's the best café in town, and she's right.",
    "Numbers like 42 and 3.14 appear in texts too.",
    "Tokenizers split unknown words into smaller pieces.",
    "The film's ending was surprising, moving and sad.",
    "Nothing happens for two hours; I fell asleep twice.",
    "An honest, funny and warm little movie about friends.",
    "Worst sequel ever made, avoid it at any cost.",
]
PAIRS = [("The movie was good.", "I liked the film."), ("It rains today.", "The sun is shining.")]
HELD_OUT = "Zebras quietly yodel über jazz — 7 times!"
# vocabulary trimming keeps what THESE texts use (a subset of what the tokenizers were trained on)
TRIM_TEXTS, TRIM_PAIRS = SENTENCES[:5], PAIRS[:1]

# tiny dims
H, L, NH, FF = 32, 2, 4, 64
D = H // NH
MAXLEN = 64


def say(*a):
    print(*a, flush=True)


# ------------------------------------------------------------------------------------------------ tokenizers
def _template(cls, sep, cls_id, sep_id, pair_sep_twice=False, pair_type=1):
    pair = (
        f"{cls}:0 $A:0 {sep}:0 "
        + (f"{sep}:{pair_type} " if pair_sep_twice else "")
        + f"$B:{pair_type} {sep}:{pair_type}"
    )
    return processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=pair, special_tokens=[(cls, cls_id), (sep, sep_id)]
    )


def wordpiece_tok(specials, cls, sep, unk, pair_sep_twice=False, pair_type=1):
    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=220, special_tokens=specials))
    tok.post_processor = _template(
        cls, sep, tok.token_to_id(cls), tok.token_to_id(sep), pair_sep_twice, pair_type
    )
    return tok


def bytelevel_bpe_tok(specials_first, specials_last=(), template=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=list(specials_first),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES, trainer)
    if specials_last:  # ModernBERT/OLMo style: special tokens after the BPE vocabulary
        tok.add_special_tokens(list(specials_last))
    if template == "roberta":
        tok.post_processor = processors.RobertaProcessing(
            sep=("</s>", tok.token_to_id("</s>")), cls=("<s>", tok.token_to_id("<s>")), add_prefix_space=False
        )
    else:
        tok.post_processor = _template("[CLS]", "[SEP]", tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]"))
    return tok


def unigram_tok(specials, unk, cls, sep, lowercase=False, pair_sep_twice=False, pair_type=1, mask_last=None):
    tok = Tokenizer(models.Unigram())
    norms = [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    if lowercase:
        norms.append(normalizers.Lowercase())
    tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=160, special_tokens=specials, unk_token=unk, shrinking_factor=0.75, n_sub_iterations=2
    )
    tok.train_from_iterator(SENTENCES, trainer)
    if mask_last:
        tok.add_special_tokens([mask_last])
    tok.post_processor = _template(
        cls, sep, tok.token_to_id(cls), tok.token_to_id(sep), pair_sep_twice, pair_type
    )
    return tok


def build_tokenizer(family):
    import transformers as tf

    if family in ("bert", "distilbert", "electra"):
        raw = wordpiece_tok(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[CLS]", "[SEP]", "[UNK]")
        cls = {
            "bert": tf.BertTokenizerFast,
            "distilbert": tf.DistilBertTokenizerFast,
            "electra": tf.ElectraTokenizerFast,
        }[family]
        return cls(
            tokenizer_object=raw,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )
    if (
        family == "mpnet"
    ):  # MPNet: WordPiece with <s> <pad> </s> at 0 1 2 (its embeddings hard-code padding_idx=1)
        raw = wordpiece_tok(
            ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], "<s>", "</s>", "[UNK]", pair_sep_twice=True
        )
        return tf.MPNetTokenizerFast(
            tokenizer_object=raw,
            bos_token="<s>",
            eos_token="</s>",
            cls_token="<s>",
            sep_token="</s>",
            unk_token="[UNK]",
            pad_token="<pad>",
            mask_token="<mask>",
        )
    if family == "roberta":
        raw = bytelevel_bpe_tok(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], template="roberta")
        return tf.RobertaTokenizerFast(
            tokenizer_object=raw,
            bos_token="<s>",
            eos_token="</s>",
            cls_token="<s>",
            sep_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="<mask>",
        )
    if family == "modernbert":  # OLMo/GPT-NeoX style byte-level BPE, specials at the end, [CLS] $A [SEP]
        raw = bytelevel_bpe_tok(
            ["<|endoftext|>"], specials_last=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
        )
        return tf.PreTrainedTokenizerFast(
            tokenizer_object=raw,
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            pad_token="[PAD]",
            mask_token="[MASK]",
            model_input_names=["input_ids", "attention_mask"],
        )
    if family == "xlm-roberta":  # fairseq order <s> <pad> </s> <unk>, <mask> last
        raw = unigram_tok(
            ["<s>", "<pad>", "</s>", "<unk>"],
            "<unk>",
            "<s>",
            "</s>",
            pair_sep_twice=True,
            pair_type=0,
            mask_last="<mask>",
        )
        return tf.XLMRobertaTokenizerFast(
            tokenizer_object=raw,
            bos_token="<s>",
            eos_token="</s>",
            cls_token="<s>",
            sep_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="<mask>",
        )
    if family == "deberta-v2":  # DeBERTa-v3 order [PAD] [CLS] [SEP] [UNK], [MASK] last
        raw = unigram_tok(["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[UNK]", "[CLS]", "[SEP]", mask_last="[MASK]")
        return tf.DebertaV2TokenizerFast(
            tokenizer_object=raw,
            bos_token="[CLS]",
            eos_token="[SEP]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            unk_token="[UNK]",
            pad_token="[PAD]",
            mask_token="[MASK]",
        )
    if family == "albert":  # <pad> <unk> [CLS] [SEP] [MASK], lower-cased SentencePiece Unigram
        raw = unigram_tok(
            ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>", "[CLS]", "[SEP]", lowercase=True
        )
        return tf.AlbertTokenizerFast(
            tokenizer_object=raw,
            bos_token="[CLS]",
            eos_token="[SEP]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="[MASK]",
        )
    raise KeyError(family)


# ------------------------------------------------------------------------------------------------ configs
def build_config(family, tok, **over):
    import transformers as tf

    V, pad = len(tok), tok.pad_token_id
    common = dict(vocab_size=V, pad_token_id=pad, num_labels=3)
    bertish = dict(hidden_size=H, num_hidden_layers=L, num_attention_heads=NH, intermediate_size=FF, **common)
    if family == "bert":
        cfg = tf.BertConfig(max_position_embeddings=MAXLEN, **bertish)
    elif family == "electra":  # embedding_size != hidden_size: embeddings_project, like ELECTRA-small
        cfg = tf.ElectraConfig(embedding_size=16, max_position_embeddings=MAXLEN, **bertish)
    elif family == "roberta":  # table rows 0..pad are not positions: + pad + 1
        cfg = tf.RobertaConfig(
            max_position_embeddings=MAXLEN + pad + 1,
            type_vocab_size=1,
            bos_token_id=0,
            eos_token_id=2,
            **bertish,
        )
    elif family == "xlm-roberta":
        cfg = tf.XLMRobertaConfig(
            max_position_embeddings=MAXLEN + pad + 1,
            type_vocab_size=1,
            bos_token_id=0,
            eos_token_id=2,
            **bertish,
        )
    elif family == "mpnet":
        cfg = tf.MPNetConfig(
            max_position_embeddings=MAXLEN + 2,
            relative_attention_num_buckets=32,
            bos_token_id=0,
            eos_token_id=2,
            **bertish,
        )
    elif family == "distilbert":
        cfg = tf.DistilBertConfig(
            dim=H, n_layers=L, n_heads=NH, hidden_dim=FF, max_position_embeddings=MAXLEN, **common
        )
    elif family == "deberta-v2":  # DeBERTa-v3-base settings, scaled down
        cfg = tf.DebertaV2Config(
            max_position_embeddings=MAXLEN,
            relative_attention=True,
            position_buckets=16,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            share_att_key=True,
            norm_rel_ebd="layer_norm",
            position_biased_input=False,
            type_vocab_size=0,
            hidden_act="gelu",
            **bertish,
        )
    elif family == "modernbert":  # 3 layers: global, local, local(global every 3) -- local window 8
        cfg = tf.ModernBertConfig(
            hidden_size=H,
            num_hidden_layers=3,
            num_attention_heads=NH,
            intermediate_size=FF // 2,
            max_position_embeddings=MAXLEN,
            local_attention=8,
            global_attn_every_n_layers=3,
            cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            **common,
        )
    elif family == "albert":
        cfg = tf.AlbertConfig(
            embedding_size=16,
            max_position_embeddings=MAXLEN,
            num_hidden_groups=1,
            inner_group_num=1,
            **bertish,
        )
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def build_model(cfg, attn="eager"):
    # from_config(cfg, attn_implementation=...) keeps *this* cfg object as model.config and writes
    # cfg._attn_implementation into it (even when it then raises): always hand it a copy.
    torch.manual_seed(0)
    m = AutoModelForSequenceClassification.from_config(copy.deepcopy(cfg), attn_implementation=attn)
    return m.eval()


# ------------------------------------------------------------------------------------------------ layouts
# What an adapter would hold. Paths are relative to one layer unless they start with the model's own attrs.
LAYOUT = {
    "bert": dict(
        layers="bert.encoder.layer",
        q="attention.self.query",
        k="attention.self.key",
        v="attention.self.value",
        o="attention.output.dense",
        fi="intermediate.dense",
        fo="output.dense",
        attn="attention.self",
        heads="num_attention_heads",
        size="attention_head_size",
        all="all_head_size",
    ),
    "distilbert": dict(
        layers="distilbert.transformer.layer",
        q="attention.q_lin",
        k="attention.k_lin",
        v="attention.v_lin",
        o="attention.out_lin",
        fi="ffn.lin1",
        fo="ffn.lin2",
        attn="attention",
        heads="n_heads",
        size="attention_head_size",
        all="dim",
    ),
    "deberta-v2": dict(
        layers="deberta.encoder.layer",
        q="attention.self.query_proj",
        k="attention.self.key_proj",
        v="attention.self.value_proj",
        extra=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
        o="attention.output.dense",
        fi="intermediate.dense",
        fo="output.dense",
        attn="attention.self",
        heads="num_attention_heads",
        size="attention_head_size",
        all="all_head_size",
    ),
    "mpnet": dict(
        layers="mpnet.encoder.layer",
        q="attention.attn.q",
        k="attention.attn.k",
        v="attention.attn.v",
        o="attention.attn.o",
        fi="intermediate.dense",
        fo="output.dense",
        attn="attention.attn",
        heads="num_attention_heads",
        size="attention_head_size",
        all="all_head_size",
    ),
    "modernbert": dict(
        layers="model.layers",
        qkv="attn.Wqkv",
        o="attn.Wo",
        fi="mlp.Wi",
        glu=True,
        fo="mlp.Wo",
        attn="attn",
        heads="num_heads",
        size="head_dim",
        all="all_head_size",
    ),
    "albert": dict(
        layers="albert.encoder.albert_layer_groups.0.albert_layers",
        q="attention.query",
        k="attention.key",
        v="attention.value",
        o="attention.dense",
        fi="ffn",
        fo="ffn_output",
        attn="attention",
        heads="num_attention_heads",
        size="attention_head_size",
        all="all_head_size",
    ),
}
LAYOUT["electra"] = {**LAYOUT["bert"], "layers": "electra.encoder.layer"}
LAYOUT["roberta"] = {**LAYOUT["bert"], "layers": "roberta.encoder.layer"}
LAYOUT["xlm-roberta"] = {**LAYOUT["bert"], "layers": "roberta.encoder.layer"}


def get(mod, path):
    return mod.get_submodule(path)


def put(mod, path, new):
    parent, _, attr = path.rpartition(".")
    setattr(mod.get_submodule(parent) if parent else mod, attr, new)


def remove_head(model, lay, i, h):
    """Remove head h of layer i by slicing (the recipe under test)."""
    layer = get(model, lay["layers"])[i]
    attn = get(layer, lay["attn"])
    n, d = getattr(attn, lay["heads"]), getattr(attn, lay["size"])
    keep = [x for x in range(n) if x != h]
    rows = torch.tensor([x * d + j for x in keep for j in range(d)])
    if "qkv" in lay:  # fused [q heads | k heads | v heads]
        A = n * d
        fused = torch.tensor([s * A + r for s in range(3) for r in rows.tolist()])
        put(layer, lay["qkv"], prune_linear_layer(get(layer, lay["qkv"]), fused))
    else:
        for name in ("q", "k", "v"):
            put(layer, lay[name], prune_linear_layer(get(layer, lay[name]), rows))
        for extra in lay.get(
            "extra", ()
        ):  # DeBERTa pos_key_proj / pos_query_proj (absent with share_att_key)
            try:
                put(layer, extra, prune_linear_layer(get(layer, extra), rows))
            except AttributeError:
                pass
    put(layer, lay["o"], prune_linear_layer(get(layer, lay["o"]), rows, dim=1))
    setattr(attn, lay["heads"], n - 1)
    setattr(attn, lay["all"], d * (n - 1))
    return keep


def remove_unit(model, lay, i, u):
    layer = get(model, lay["layers"])[i]
    fi = get(layer, lay["fi"])
    n = get(layer, lay["fo"]).in_features
    keep = [x for x in range(n) if x != u]
    rows = keep + [n + x for x in keep] if lay.get("glu") else keep  # GLU Wi: [input half | gate half]
    put(layer, lay["fi"], prune_linear_layer(fi, torch.tensor(rows)))
    put(layer, lay["fo"], prune_linear_layer(get(layer, lay["fo"]), torch.tensor(keep), dim=1))


def zero_hooks(model, lay, i, h, u, all_layers=False):
    """Reference: the original model with head h's context (input columns of the output projection) and FFN
    unit u's activation (input column of the FFN output) zeroed."""
    layers = get(model, lay["layers"])
    targets = range(len(layers)) if all_layers else [i]
    hooks = []
    for li in targets:
        layer = layers[li]
        attn = get(layer, lay["attn"])
        d = getattr(attn, lay["size"])

        def pre_o(_m, args, d=d):
            x = args[0].clone()
            x[..., h * d : (h + 1) * d] = 0
            return (x,) + args[1:]

        def pre_fo(_m, args):
            x = args[0].clone()
            x[..., u] = 0
            return (x,) + args[1:]

        hooks.append(get(layer, lay["o"]).register_forward_pre_hook(pre_o))
        if u is not None:
            hooks.append(get(layer, lay["fo"]).register_forward_pre_hook(pre_fo))
    return hooks


def run(model, enc):
    with torch.no_grad():
        return model(**enc).logits


# ------------------------------------------------------------------------------------------------ vocab trimming
def _remap_processor(pp, new_id, old_tok_to_id):
    if pp is None:
        return pp
    t = pp.get("type")
    if t == "Sequence":
        pp["processors"] = [_remap_processor(p, new_id, old_tok_to_id) for p in pp["processors"]]
    elif t == "TemplateProcessing":
        for spec in pp["special_tokens"].values():
            spec["ids"] = [new_id[i] for i in spec["ids"]]
    elif t in ("RobertaProcessing", "BertProcessing"):
        for key in ("sep", "cls"):
            pp[key] = [pp[key][0], new_id[pp[key][1]]]
    return pp


def trim_tokenizer(tok, texts, pairs, bpe_closure=True):
    """Return (new_tokenizer, keep_old_ids) -- per kind: WordPiece / BPE / Unigram tokenizer.json surgery."""
    j = json.loads(tok.backend_tokenizer.to_str())
    kind = j["model"]["type"]
    enc = tok(texts)["input_ids"] + (
        tok([a for a, _ in pairs], [b for _, b in pairs])["input_ids"] if pairs else []
    )
    used = {i for ids in enc for i in ids}
    vocab = tok.get_vocab()  # token -> id (model vocab + added tokens)
    id2tok = {i: t for t, i in vocab.items()}
    keep = set(used) | set(tok.all_special_ids) | {a["id"] for a in j["added_tokens"]}
    if kind == "WordPiece":
        pre = j["model"]["continuing_subword_prefix"]
        keep |= {
            i
            for t, i in j["model"]["vocab"].items()
            if len(t) == 1 or (t.startswith(pre) and len(t) == len(pre) + 1)
        }
    elif kind == "BPE":
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in j["model"]["merges"]]
        producers = {}
        for a, b in merges:
            producers.setdefault(a + b, []).append((a, b))
        alphabet = set(pre_tokenizers.ByteLevel.alphabet())
        kept_toks = {id2tok[i] for i in keep} | alphabet
        stack = list(kept_toks) if bpe_closure else []
        while stack:  # closure: every merge producing a kept token, and its parts (superset of merges fired)
            t = stack.pop()
            for a, b in producers.get(t, ()):
                for part in (a, b):
                    if part not in kept_toks:
                        kept_toks.add(part)
                        stack.append(part)
        keep = {vocab[t] for t in kept_toks if t in vocab}
    elif kind == "Unigram":
        pieces = j["model"]["vocab"]
        keep |= {i for i, (p, _s) in enumerate(pieces) if len(p) == 1}  # single characters (and the lone "▁")
        keep.add(
            min(range(len(pieces)), key=lambda i: pieces[i][1])
        )  # keeps min_score, hence the unk penalty
        keep.add(j["model"]["unk_id"])
    keep = sorted(keep)
    new_id = {o: n for n, o in enumerate(keep)}
    m = j["model"]
    if kind in ("WordPiece", "BPE"):
        m["vocab"] = {id2tok[o]: new_id[o] for o in keep if id2tok[o] in m["vocab"]}
        if kind == "BPE":
            kt = set(m["vocab"])
            kept_merges = [(a, b) for a, b in merges if a + b in kt and a in kt and b in kt]
            m["merges"] = [list(x) for x in kept_merges]
    else:
        m["vocab"] = [m["vocab"][o] for o in keep if o < len(m["vocab"])]
        m["unk_id"] = new_id[m["unk_id"]]
    for a in j["added_tokens"]:
        a["id"] = new_id[a["id"]]
    j["post_processor"] = _remap_processor(j["post_processor"], new_id, vocab)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        Path(tmp, "tokenizer.json").write_text(json.dumps(j), encoding="utf-8")
        for extra in (
            "vocab.txt",
            "vocab.json",
            "merges.txt",
            "spiece.model",
            "sentencepiece.bpe.model",
            "spm.model",
        ):
            Path(tmp, extra).unlink(missing_ok=True)
        cpath = Path(tmp, "tokenizer_config.json")
        c = json.loads(cpath.read_text())
        c["added_tokens_decoder"] = {
            str(new_id[int(k)]): v for k, v in c.get("added_tokens_decoder", {}).items()
        }
        cpath.write_text(json.dumps(c))
        new = AutoTokenizer.from_pretrained(tmp)
    return new, keep, kind


def check_trim(tok, new, keep, texts=None, pairs=None):
    new_id = {o: n for n, o in enumerate(keep)}
    bad = 0
    cases = [(t, None) for t in (TRIM_TEXTS if texts is None else texts)] + (
        TRIM_PAIRS if pairs is None else pairs
    )
    for a, b in cases:
        old = tok(a, b)["input_ids"]
        nw = new(a, b)["input_ids"]
        if [new_id.get(i, -1) for i in old] != nw:
            bad += 1
    held_old, held_new = tok(HELD_OUT)["input_ids"], new(HELD_OUT)["input_ids"]
    specials_ok = all(
        new_id[tok.convert_tokens_to_ids(t)] == new.convert_tokens_to_ids(t) for t in tok.all_special_tokens
    )
    return (
        bad,
        len(cases),
        specials_ok,
        tok.convert_ids_to_tokens(held_old),
        new.convert_ids_to_tokens(held_new),
    )


# ------------------------------------------------------------------------------------------------ ONNX
def onnx_check(family, model, tok, enc_texts):
    import onnx
    from onnxruntime import InferenceSession, SessionOptions
    from optimum.exporters.onnx import onnx_export_from_model

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.time()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                onnx_export_from_model(
                    model,
                    output=tmp,
                    task="text-classification",
                    opset=17,
                    do_validation=False,
                    preprocessors=[tok],
                )
        except Exception as exc:  # noqa: BLE001
            return {"export": f"FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
        out["export_s"] = round(time.time() - t, 1)
        out["files"] = sorted(os.listdir(tmp))
        so = SessionOptions()
        so.intra_op_num_threads = 1
        sess = InferenceSession(str(Path(tmp, "model.onnx")), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        out["onnx_inputs"] = names
        enc = tok(enc_texts, padding=True, return_tensors="np")
        feed = {k: enc[k].astype(np.int64) for k in names if k in enc}
        missing = [k for k in names if k not in enc]
        for k in missing:  # e.g. token_type_ids the tokenizer does not return
            feed[k] = np.zeros_like(enc["input_ids"], dtype=np.int64)
        out["fed_zeros_for"] = missing
        ref = run(
            model,
            {k: torch.tensor(enc[k]) for k in enc if k in ("input_ids", "attention_mask", "token_type_ids")},
        )
        got = sess.run(["logits"], feed)[0]
        out["ort_max_abs_diff"] = float(np.abs(got - ref.numpy()).max())
        try:
            from optimum.onnxruntime import ORTModelForSequenceClassification

            ort_model = ORTModelForSequenceClassification.from_pretrained(tmp)
            pt = tok(enc_texts, padding=True, return_tensors="pt")
            ort_logits = ort_model(**pt).logits
            out["ORTModel_max_abs_diff"] = float((ort_logits - ref).abs().max())
        except Exception as exc:  # noqa: BLE001
            out["ORTModel"] = f"FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        g = onnx.load(str(Path(tmp, "model.onnx"))).graph
        ops = Counter(n.op_type for n in g.node)
        out["ops"] = {
            k: ops[k]
            for k in ("MatMul", "Gemm", "Softmax", "Gather", "GatherElements", "Einsum", "Cos", "Sin")
            if ops[k]
        }
        mm = [n.name for n in g.node if n.op_type in ("MatMul", "Gemm") and n.name]
        pats = sorted({re.sub(r"\.\d+/", ".N/", "/".join(x.split("/")[:-1])) for x in mm})
        out["matmul_module_paths"] = pats
        try:  # int8 dynamic as edgecompress runs it (Optimum ORTQuantizer, avx2 preset, per-tensor)
            from optimum.onnxruntime import ORTQuantizer
            from optimum.onnxruntime.configuration import AutoQuantizationConfig

            qdir = Path(tmp, "q")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ORTQuantizer.from_pretrained(tmp, file_name="model.onnx").quantize(
                    save_dir=qdir,
                    quantization_config=AutoQuantizationConfig.avx2(is_static=False, per_channel=False),
                )
            qf = next(qdir.glob("*.onnx"))
            qg = onnx.load(str(qf)).graph
            qops = Counter(n.op_type for n in qg.node)
            still_float = sorted({re.sub(r"\.\d+/", ".N/", n.name) for n in qg.node if n.op_type == "MatMul"})
            qs = InferenceSession(str(qf), so, providers=["CPUExecutionProvider"])
            qgot = qs.run(["logits"], feed)[0]
            out["int8_dynamic"] = (
                f"MatMulInteger {qops['MatMulInteger']}, float MatMul left {qops['MatMul']} "
                f"{still_float}; max|logits - fp32 torch| {float(np.abs(qgot - ref.numpy()).max()):.2e} "
                f"(|logits| max {float(ref.abs().max()):.2e})"
            )
        except Exception as exc:  # noqa: BLE001
            out["int8_dynamic"] = f"FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        try:
            from edgecompress.quantize.guard import node_groups

            groups = node_groups(Path(tmp, "model.onnx"), ["MatMul", "Gemm"])
            out["guard_node_groups"] = {k: len(v) for k, v in groups.items()}
        except Exception as exc:  # noqa: BLE001
            out["guard_node_groups"] = f"FAILED {exc}"
    return out


# ------------------------------------------------------------------------------------------------ per family
FAMILIES = [
    "bert",
    "electra",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "deberta-v2",
    "mpnet",
    "modernbert",
    "albert",
]


def module_name(model, target):
    for name, mod in model.named_modules():
        if mod is target:
            return name
    return None


def describe(family, model, tok):
    base = model.base_model
    prefix = model.base_model_prefix
    emb = getattr(base, "embeddings", None)
    info = {
        "class": type(model).__name__,
        "base_model_prefix": prefix,
        "word_embeddings": module_name(model, model.get_input_embeddings()),
    }
    for attr in ("position_embeddings", "token_type_embeddings"):
        m = getattr(emb, attr, None) if emb is not None else None
        info[attr] = (
            (module_name(model, m) + f" {tuple(m.weight.shape)}") if isinstance(m, nn.Embedding) else None
        )
    if emb is not None and hasattr(emb, "padding_idx"):
        info["embeddings.padding_idx (position offset)"] = emb.padding_idx
    lists = [(n, len(m)) for n, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    info["ModuleLists"] = lists
    info["top-level children"] = [n for n, _ in model.named_children()]
    extras = [
        n
        for n, _ in model.named_modules()
        if re.search(
            r"rel_embeddings|relative_attention_bias|embeddings_project|embed_proj|embedding_hidden_mapping_in|final_norm|rotary",
            n,
        )
    ]
    info["shared/extra modules"] = extras
    lay = LAYOUT[family]
    layer0 = get(model, lay["layers"])[0]
    info["layer0 linear modules"] = [
        f"{n}{tuple(m.weight.shape)}" for n, m in layer0.named_modules() if isinstance(m, nn.Linear)
    ]
    attn = get(layer0, lay["attn"])
    info["attention attrs"] = {
        k: v
        for k, v in vars(attn).items()
        if isinstance(v, (int, float, str, tuple, bool)) and not k.startswith("_") and k != "training"
    }
    return info


def probe(family):
    say(f"\n{'=' * 100}\n{family}\n{'=' * 100}")
    t_fam = time.time()
    tok = build_tokenizer(family)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        files = sorted(os.listdir(tmp))
        reloaded = AutoTokenizer.from_pretrained(tmp)
    say(
        f"tokenizer: {type(tok).__name__}, backend model {type(tok.backend_tokenizer.model).__name__}, "
        f"vocab {len(tok)}, specials {dict(zip(tok.all_special_tokens, tok.all_special_ids))}"
    )
    say(
        f"  save_pretrained files: {files}; AutoTokenizer reload -> {type(reloaded).__name__}, "
        f"same ids: {reloaded(SENTENCES)['input_ids'] == tok(SENTENCES)['input_ids']}"
    )
    say(f"  model_input_names {tok.model_input_names}; pair encoding keys {list(tok(*PAIRS[0]).keys())}")
    pe = tok(*PAIRS[0])
    say(f"  pair tokens: {tok.convert_ids_to_tokens(pe['input_ids'])}")
    if "token_type_ids" in pe:
        say(f"  pair token_type_ids: {pe['token_type_ids']}")

    cfg = build_config(family, tok)
    model = build_model(cfg)
    say(
        f"config {type(cfg).__name__}: "
        + ", ".join(
            f"{k}={getattr(cfg, k, None)}"
            for k in (
                "num_hidden_layers",
                "hidden_size",
                "num_attention_heads",
                "intermediate_size",
                "max_position_embeddings",
                "pad_token_id",
                "vocab_size",
                "type_vocab_size",
                "embedding_size",
            )
            if hasattr(cfg, k)
        )
    )
    say(f"  attribute_map: {type(cfg).attribute_map}")
    for k, v in describe(family, model, tok).items():
        say(f"  {k}: {v}")

    enc = tok(SENTENCES[:3], padding=True, return_tensors="pt")
    fwd_keys = [k for k in enc if k in ("input_ids", "attention_mask", "token_type_ids")]
    enc = {k: enc[k] for k in fwd_keys}
    with torch.no_grad():
        out = model(**enc, output_attentions=True, output_hidden_states=True)
        base_out = model.base_model(**enc)
    att = out.attentions
    say(
        f"forward (eager): logits {tuple(out.logits.shape)}; attentions: {len(att)} x {tuple(att[0].shape)} "
        f"(rows sum to 1: {bool(torch.allclose(att[0].sum(-1), torch.ones(()), atol=1e-5))}); hidden_states: "
        f"{len(out.hidden_states)} x {tuple(out.hidden_states[0].shape)}; hidden_states[-1] == base last_hidden_state: "
        f"{bool(torch.allclose(out.hidden_states[-1], base_out.last_hidden_state, atol=1e-6))}"
    )
    am = enc["attention_mask"].bool()
    if (~am).any():
        a0 = att[0]
        real_q_pad_k = (am[:, None, :, None] & ~am[:, None, None, :]).expand_as(a0)
        on_pads = float(a0.masked_select(real_q_pad_k).max())
        pad_q = a0.masked_select((~am)[:, None, :, None].expand_as(a0))
        say(
            f"  attention of real queries on padded keys: max {on_pads:.2e}; padded query rows: "
            f"min {float(pad_q.min()):.3f} max {float(pad_q.max()):.3f} (1/len = {1 / am.shape[1]:.3f})"
        )
    # token_type_ids accepted?
    import inspect

    sig = inspect.signature(model.forward).parameters
    say(f"  forward accepts token_type_ids: {'token_type_ids' in sig}; position_ids: {'position_ids' in sig}")
    if family in ("roberta", "xlm-roberta") and "token_type_ids" in sig:
        try:
            with torch.no_grad():
                model(input_ids=enc["input_ids"], token_type_ids=torch.ones_like(enc["input_ids"]))
            say("  token_type_ids=1: accepted")
        except Exception as exc:  # noqa: BLE001
            say(f"  token_type_ids=1: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")

    # other attention implementations
    for impl in ("sdpa", "flash_attention_2", "flex_attention"):
        try:
            m2 = build_model(cfg, attn=impl)
            m2.load_state_dict(model.state_dict())
            with torch.no_grad():
                o2 = m2(**enc, output_attentions=True)
            a2 = o2.attentions
            same = bool(torch.allclose(o2.logits, out.logits, atol=1e-5))
            say(
                f"  attn_implementation={impl}: builds; output_attentions -> {'None' if a2 is None or a2[0] is None else tuple(a2[0].shape)}; "
                f"logits == eager: {same}; config._attn_implementation after that call: {m2.config._attn_implementation}"
            )
        except Exception as exc:  # noqa: BLE001
            say(f"  attn_implementation={impl}: {type(exc).__name__}: {str(exc).splitlines()[0][:140]}")

    # --- pruning: remove head 1 of layer 0 and FFN unit 5 of layer 0 (layer 1 for ModernBERT: has attn_norm)
    lay = LAYOUT[family]
    li, h, u = (1 if family == "modernbert" else 0), 1, 5
    batch = tok(SENTENCES[3:6] + [SENTENCES[0]], padding=True, return_tensors="pt")
    batch = {k: batch[k] for k in fwd_keys}
    if family == "albert":
        ref_model = copy.deepcopy(model)
        zero_hooks(ref_model, lay, li, h, u)
        ref = run(ref_model, batch)
        pr = copy.deepcopy(model)
        remove_head(pr, lay, li, h)
        remove_unit(pr, lay, li, u)
        say(
            f"prune (ALBERT: one shared layer, applied {cfg.num_hidden_layers} times): slicing it == zeroing head/unit "
            f"in EVERY layer: max|diff| {float((run(pr, batch) - ref).abs().max()):.2e}; per-layer removal impossible "
            f"without un-sharing (a copy per layer)"
        )
    elif family == "mpnet":
        pr = copy.deepcopy(model)
        remove_head(pr, lay, li, h)
        remove_unit(pr, lay, li, u)
        try:
            run(pr, batch)
            say("prune per layer: ran (unexpected)")
        except Exception as exc:  # noqa: BLE001
            say(
                f"prune one layer's head with the shared relative_attention_bias: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            )
        # structural fix 1: per-layer selection of the shared bias' head columns (a pre-hook here; a module in an adapter)
        keep = [x for x in range(NH) if x != h]

        def sel(_m, args, kwargs):
            args = list(args)
            if len(args) > 3 and args[3] is not None:
                args[3] = args[3][:, keep]
            return tuple(args), kwargs

        pr.mpnet.encoder.layer[li].attention.attn.register_forward_pre_hook(sel, with_kwargs=True)
        ref_model = copy.deepcopy(model)
        zero_hooks(ref_model, lay, li, h, u)
        ref = run(ref_model, batch)
        say(
            f"  fix A (layer {li} reads only its heads' bias columns): max|diff| vs zeroed {float((run(pr, batch) - ref).abs().max()):.2e}"
        )
        # structural fix 2: the same head removed in every layer -> slice the shared Embedding's columns
        pr2 = copy.deepcopy(model)
        for i in range(cfg.num_hidden_layers):
            remove_head(pr2, lay, i, h)
        old = pr2.mpnet.encoder.relative_attention_bias
        new = nn.Embedding(old.num_embeddings, NH - 1)
        with torch.no_grad():
            new.weight.copy_(old.weight[:, keep])
        pr2.mpnet.encoder.relative_attention_bias = new
        ref2_model = copy.deepcopy(model)
        zero_hooks(ref2_model, lay, li, h, None, all_layers=True)
        say(
            f"  fix B (same head out of every layer, bias columns sliced): max|diff| {float((run(pr2, batch) - run(ref2_model, batch)).abs().max()):.2e}"
        )
    else:
        ref_model = copy.deepcopy(model)
        zero_hooks(ref_model, lay, li, h, u)
        ref = run(ref_model, batch)
        pr = copy.deepcopy(model)
        remove_head(pr, lay, li, h)
        remove_unit(pr, lay, li, u)
        with torch.no_grad():
            po = pr(**batch, output_attentions=True)
        say(
            f"prune layer {li}: head {h} + FFN unit {u}: max|logits - zeroed reference| {float((po.logits - ref).abs().max()):.2e}; "
            f"orig vs zeroed (sanity, should be > 0): {float((run(model, batch) - ref).abs().max()):.2e}; attentions after: {tuple(po.attentions[li].shape)}"
        )
        if family == "deberta-v2":  # the other DeBERTa layout: separate pos_key_proj / pos_query_proj
            cfg_b = build_config(family, tok, share_att_key=False)
            mb = build_model(cfg_b)
            names = [
                n
                for n, _ in mb.named_modules()
                if n.startswith("deberta.encoder.layer.0.attention.self.") and "proj" in n
            ]
            rb = copy.deepcopy(mb)
            zero_hooks(rb, lay, li, h, u)
            pb = copy.deepcopy(mb)
            remove_head(pb, lay, li, h)
            remove_unit(pb, lay, li, u)
            say(
                f"  share_att_key=False ({names}): max|diff| {float((run(pb, batch) - run(rb, batch)).abs().max()):.2e}"
            )

    # --- reload through config.pruned_heads (what transformers applies in post_init)
    cfg_p = copy.deepcopy(cfg)
    cfg_p.pruned_heads = {0: [h]}
    try:
        mp = AutoModelForSequenceClassification.from_config(cfg_p, attn_implementation="eager").eval()
        try:
            run(mp, batch)
            res = "builds and runs"
        except Exception as exc:  # noqa: BLE001
            res = f"builds, forward fails: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    except Exception as exc:  # noqa: BLE001
        res = f"fails to build: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    say(f"from_config with config.pruned_heads={{0: [{h}]}}: {res}")

    # --- vocabulary trimming
    try:
        new_tok, keep, kind = trim_tokenizer(tok, TRIM_TEXTS, TRIM_PAIRS)
        bad, n, specials_ok, held_old, held_new = check_trim(tok, new_tok, keep)
        say(
            f"vocab trim ({kind}): {len(tok)} -> {len(new_tok)} ids; texts retokenised differently: {bad}/{n}; "
            f"specials at mapped ids: {specials_ok}; reloaded as {type(new_tok).__name__}; pad id {tok.pad_token_id} -> {new_tok.pad_token_id}"
        )
        say(f"  held-out before: {held_old}\n  held-out after : {held_new}")
    except Exception as exc:  # noqa: BLE001
        import traceback

        say(f"vocab trim FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()

    if family in (
        "bert",
        "roberta",
        "xlm-roberta",
        "modernbert",
    ):  # stress: trim to every pair of consecutive texts
        fails, sizes = 0, []
        for i in range(len(SENTENCES)):
            texts = [SENTENCES[i], SENTENCES[(i + 1) % len(SENTENCES)]]
            nt, kp, _k = trim_tokenizer(tok, texts, [])
            fails += check_trim(tok, nt, kp, texts, [])[0]
            sizes.append(len(kp))
        say(
            f"  stress: trimmed to each of {len(SENTENCES)} text pairs (kept {min(sizes)}-{max(sizes)} ids): texts retokenised differently: {fails}"
        )
        if family == "roberta":
            nt, kp, _k = trim_tokenizer(tok, TRIM_TEXTS, TRIM_PAIRS, bpe_closure=False)
            bad = check_trim(tok, nt, kp)[0]
            say(
                f"  naive BPE trim (used tokens + 256 bytes, merges among them, no closure over intermediate merges): "
                f"{len(kp)} ids, texts retokenised differently: {bad}/{len(TRIM_TEXTS) + len(TRIM_PAIRS)}"
            )

    # --- position table trimming (where it is a table)
    emb = getattr(model.base_model, "embeddings", None)
    pos = getattr(emb, "position_embeddings", None) if emb is not None else None
    if isinstance(pos, nn.Embedding):
        n_tok = batch["input_ids"].shape[1]
        offset = (emb.padding_idx + 1) if family in ("roberta", "xlm-roberta", "mpnet") else 0
        res = []
        for rows in (n_tok, n_tok + offset):
            m3 = copy.deepcopy(model)
            e3 = m3.base_model.embeddings
            t3 = nn.Embedding(rows, pos.embedding_dim, padding_idx=pos.padding_idx)
            with torch.no_grad():
                t3.weight.copy_(pos.weight[:rows])
            e3.position_embeddings = t3
            try:
                res.append(
                    f"{rows} rows: max|diff| {float((run(m3, batch) - run(model, batch)).abs().max()):.1e}"
                )
            except Exception as exc:  # noqa: BLE001
                res.append(f"{rows} rows: {type(exc).__name__}")
        say(f"position table cut for {n_tok}-token inputs (offset {offset}): " + "; ".join(res))

    # --- ONNX
    o = onnx_check(family, model, tok, SENTENCES[:2] + [SENTENCES[6]])
    for k, v in o.items():
        say(f"  onnx {k}: {v}")
    say(f"[{family}: {time.time() - t_fam:.1f}s]")
    return model, tok


def modernbert_int8_long(models):
    """ModernBERT's rotary angles are a MatMul (inv_freq x position_ids) in the graph: dynamic int8 quantizes it."""
    import onnx
    from onnxruntime import InferenceSession
    from optimum.exporters.onnx import onnx_export_from_model
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    m, tok = models["modernbert"]
    feeds = []
    for text in (" ".join(SENTENCES[:4]), " ".join(SENTENCES * 6)):
        enc = tok([text, SENTENCES[0]], padding=True, return_tensors="np")
        feeds.append({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        onnx_export_from_model(
            m, output=tmp, task="text-classification", opset=17, do_validation=False, preprocessors=[tok]
        )
        g = onnx.load(str(Path(tmp, "model.onnx"))).graph
        rot = [x.name for x in g.node if x.op_type == "MatMul" and "rotary_emb" in x.name]
        rot_out = [x.output[0] for x in g.node if x.name in rot]

        def with_angles(
            path,
        ):  # expose the rotary MatMul outputs (angles = positions x inv_freq) as graph outputs
            mm = onnx.load(str(path))
            for name in rot_out:
                mm.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            p2 = Path(str(path) + ".angles.onnx")
            onnx.save(mm, str(p2))
            return InferenceSession(str(p2), providers=["CPUExecutionProvider"])

        sessions = {"fp32": with_angles(Path(tmp, "model.onnx"))}
        for label, excl in (("all MatMuls int8", []), ("rotary MatMuls kept float", rot)):
            qc = AutoQuantizationConfig.avx2(is_static=False, per_channel=False)
            qc.nodes_to_exclude = list(excl)
            qd = Path(tmp, label.replace(" ", "_"))
            ORTQuantizer.from_pretrained(tmp, file_name="model.onnx").quantize(
                save_dir=qd, quantization_config=qc
            )
            sessions[label] = with_angles(next(qd.glob("*.onnx")))
        lines = []
        for feed in feeds:
            ref = sessions["fp32"].run(["logits"] + rot_out, feed)
            res = {}
            for label in ("all MatMuls int8", "rotary MatMuls kept float"):
                outs = sessions[label].run(["logits"] + rot_out, feed)
                ang = max(float(np.abs(x - y).max()) for x, y in zip(outs[1:], ref[1:]))
                res[label] = (
                    f"logits {float(np.abs(outs[0] - ref[0]).max()):.1e}, rotary angles {ang:.2e} rad"
                )
            lines.append(f"{feed['input_ids'].shape[1]} tokens: {res}")
    say(
        f"ModernBERT int8 dynamic (Optimum avx2, per-tensor): rotary MatMul nodes {rot} become MatMulInteger;\n  "
        + "\n  ".join(lines)
        + "\n  (random weights: logits barely move; the angle error is what a trained model would feel)"
    )


def extra_checks(models):
    say(f"\n{'=' * 100}\nextra checks\n{'=' * 100}")
    modernbert_int8_long(models)
    import transformers as tf

    # student configs: what a config copy with other widths / fewer layers needs
    c = tf.DistilBertConfig(dim=H, n_layers=L, n_heads=NH, hidden_dim=FF)
    c.num_hidden_layers = 1
    c.intermediate_size = 16
    say(
        f"DistilBertConfig: set num_hidden_layers=1 -> n_layers={c.n_layers}; set intermediate_size=16 -> hidden_dim={c.hidden_dim} "
        f"(intermediate_size is NOT mapped: {getattr(c, 'intermediate_size', None)} is a stray attribute)"
    )
    tok = models["deberta-v2"][1]
    dc = build_config("deberta-v2", tok)
    dc.hidden_size, dc.num_attention_heads, dc.intermediate_size = 48, 6, 96
    try:
        m = build_model(dc)
        run(m, {"input_ids": torch.tensor([[1, 5, 6, 2]])})
        say("DeBERTa width change without pooler_hidden_size: runs (unexpected)")
    except Exception as exc:  # noqa: BLE001
        say(
            f"DeBERTa hidden_size 32->48 keeping pooler_hidden_size={dc.pooler_hidden_size}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        )
    dc.pooler_hidden_size = 48
    run(build_model(dc), {"input_ids": torch.tensor([[1, 5, 6, 2]])})
    say("  ... with pooler_hidden_size=48: runs")
    ec = build_config("electra", models["electra"][1])
    ec.hidden_size, ec.num_attention_heads = 48, 6
    me = build_model(ec)
    say(
        f"ELECTRA hidden 32->48 (embedding_size {ec.embedding_size} kept): word table {tuple(me.get_input_embeddings().weight.shape)}, "
        f"embeddings_project {tuple(me.electra.embeddings_project.weight.shape)}"
    )

    # trimming caveats, on hand-made vocabularies
    import tokenizers.models as tkm

    v = {"[UNK]": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "##bc": 5, "##b": 6}
    t = Tokenizer(tkm.WordPiece(v, unk_token="[UNK]"))
    t2 = Tokenizer(tkm.WordPiece({k: i for i, k in enumerate(k for k in v if k != "ab")}, unk_token="[UNK]"))
    say(
        f"WordPiece caveat: 'abc' -> {t.encode('abc').tokens} with V; with V minus the unused 'ab' -> {t2.encode('abc').tokens} "
        "(a word that was [UNK] emits none of the pieces on its failed greedy path)"
    )
    pieces = [
        ("<unk>", 0.0),
        ("\u2581caf", -2.0),
        ("\u2581c", -8.0),
        ("a", -8.0),
        ("f\u00e9", -8.0),
        ("f", -8.0),
        ("qq", -20.0),
    ]

    def uni(p):
        u = Tokenizer(tkm.Unigram(p, unk_id=0, byte_fallback=False))
        u.pre_tokenizer = pre_tokenizers.Metaspace()
        return u

    full, cut = uni(pieces).encode("caf\u00e9"), uni([x for x in pieces if x[0] != "qq"]).encode("caf\u00e9")
    say(
        f"Unigram caveat: 'café' -> {full.tokens} {full.ids}; after dropping the unused lowest-score piece 'qq' -> "
        f"{cut.tokens} {cut.ids} (unk score = min_score - 10 moves with the vocabulary: keep the min-score piece)"
    )

    # edgecompress today: its BERT-only layer_parts on each family
    from edgecompress.modeling.layers import layer_parts

    for fam, (m, _t) in models.items():
        try:
            layer_parts(m)
            r = "ok"
        except Exception as exc:  # noqa: BLE001
            r = f"{type(exc).__name__}: {str(exc)[:110]}"
        say(f"edgecompress layer_parts({fam}): {r}")

    # ModernBERT: per-layer role depends on the layer's index
    mb = models["modernbert"][0]
    say(
        "ModernBERT layers: "
        + "; ".join(
            f"{i}: attn_norm={type(l.attn_norm).__name__}, local_attention={l.attn.local_attention}, rope_theta="
            f"{l.attn.rotary_emb.config.rope_theta}"
            for i, l in enumerate(mb.model.layers)
        )
    )
    sd = mb.state_dict()
    one = copy.deepcopy(mb.config)
    one.num_hidden_layers = 2
    st = AutoModelForSequenceClassification.from_config(one, attn_implementation="eager")
    missing = [k for k in sd if k.startswith("model.layers.1.")]
    student_keys = [k for k in st.state_dict() if k.startswith("model.layers.0.")]
    say(
        f"  student layer 0 <- teacher layer 1: teacher keys {len(missing)}, student layer-0 keys {len(student_keys)} "
        f"(teacher's attn_norm has no place: {[k for k in missing if 'attn_norm' in k]})"
    )

    # RoBERTa: pad id is the position offset -- what if a trimmed vocabulary moved it
    rb, rtok = models["roberta"]
    enc = rtok(SENTENCES[:2], padding=True, return_tensors="pt")
    from transformers.models.roberta.modeling_roberta import create_position_ids_from_input_ids

    say(
        f"RoBERTa position ids (pad {rtok.pad_token_id}): {create_position_ids_from_input_ids(enc['input_ids'], rtok.pad_token_id)[1].tolist()}"
    )

    # ONNX graph: eager vs sdpa export of the same BERT
    import onnx
    from onnxruntime import InferenceSession
    from optimum.exporters.onnx import onnx_export_from_model

    for fam in ("bert", "modernbert"):
        bm, btok = models[fam]
        ops = {}
        enc = btok(SENTENCES[:2], padding=True, return_tensors="np")
        for impl in ("eager", "sdpa"):
            m = build_model(bm.config, attn=impl)
            m.load_state_dict(bm.state_dict())
            with (
                tempfile.TemporaryDirectory() as tmp,
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                onnx_export_from_model(
                    m,
                    output=tmp,
                    task="text-classification",
                    opset=17,
                    do_validation=False,
                    preprocessors=[btok],
                )
                g = onnx.load(str(Path(tmp, "model.onnx"))).graph
                cnt = Counter(n.op_type for n in g.node)
                sess = InferenceSession(str(Path(tmp, "model.onnx")), providers=["CPUExecutionProvider"])
                feed = {i.name: enc[i.name].astype(np.int64) for i in sess.get_inputs()}
                diff = float(
                    np.abs(
                        sess.run(["logits"], feed)[0]
                        - run(bm, {k: torch.tensor(v) for k, v in feed.items()}).numpy()
                    ).max()
                )
                ops[impl] = (
                    len(g.node),
                    {k: cnt[k] for k in ("MatMul", "Softmax", "Mul", "Div", "Sqrt", "Transpose") if cnt[k]},
                    f"max|diff| vs eager torch {diff:.1e}",
                )
        say(f"{fam} ONNX graph eager vs sdpa (opset 17): {ops}")


if __name__ == "__main__":
    say(f"torch {torch.__version__}")
    import onnxruntime
    import optimum.version
    import tokenizers
    import transformers

    say(
        f"transformers {transformers.__version__}, optimum {optimum.version.__version__}, onnxruntime {onnxruntime.__version__}, tokenizers {tokenizers.__version__}"
    )
    built = {}
    for fam in FAMILIES:
        try:
            built[fam] = probe(fam)
        except Exception as exc:  # noqa: BLE001
            import traceback

            say(f"{fam} FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc()
    extra_checks(built)
    say(f"\ntotal {time.time() - T0:.1f}s")
