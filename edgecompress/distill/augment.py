"""A larger transfer set: perturbed copies of the training texts, labelled by the teacher alone.

Tang et al. (2019) distil BERT into small networks with masking, part-of-speech-guided word replacement and
n-gram sampling; a small network learns far more from many teacher-labelled examples than from the labelled
set alone. Here: masking (a word becomes the tokenizer's mask token) and n-gram sampling (a copy keeps only a
random span of 1..ngram_max words). POS-guided replacement needs a tagger, and none ships offline.
"""

from __future__ import annotations

import random

from edgecompress.data.examples import Example

UNLABELLED = -1  # the label id of an augmented copy: only the teacher's outputs teach it


def augment_text(words: list[str], rng: random.Random, mask_token: str, cfg) -> str:
    out = [mask_token if rng.random() < cfg.mask_prob else w for w in words]
    if len(out) > 1 and rng.random() < cfg.ngram_prob:
        n = rng.randint(1, min(cfg.ngram_max, len(out)))
        start = rng.randint(0, len(out) - n)
        out = out[start : start + n]
    return " ".join(out)


def augmented_examples(examples: list[Example], cfg, mask_token: str, seed: int) -> list[Example]:
    """``cfg.copies`` perturbed copies of each example's text (pair texts are kept), in a seeded order: the same
    seed gives the same transfer set."""
    rng = random.Random(seed)
    out = []
    for ex in examples:
        words = ex.text.split()
        for _ in range(cfg.copies):
            out.append(Example(augment_text(words, rng, mask_token, cfg), ex.label, ex.text_pair, ex.group))
    return out
