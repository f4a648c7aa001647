"""What a quantizer may need beyond its config, and the calibration samples several of them draw.

A leaf module: the registry, the stage and every handler import it; it imports none of them.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecompress.data.examples import PreparedData, pair_texts
from edgecompress.inputs import TOKENIZER_INPUTS


@dataclass
class QuantContext:
    """Data for calibration and accuracy checks, the sequence length, a seed, a private scratch folder."""

    data: PreparedData
    max_length: int
    seed: int
    scratch: Path  # a private working folder, deleted afterwards
    where: str = "quantization"  # the recipe field of this variant, for errors
    source_model: Path | None = None  # the PyTorch model the fp32 variant was exported from (weight-only)


def calibration_samples(
    ctx: QuantContext, tokenizer, n: int, inputs: Collection[str] = TOKENIZER_INPUTS
) -> list[dict[str, np.ndarray]]:
    """``n`` training examples (seeded choice), one dict of int64 arrays each, unpadded, holding only the
    ``inputs`` the calibrated model takes (edgecompress.inputs: a graph without token_type_ids refuses them)."""
    train = ctx.data.splits["train"]
    chosen = sorted(random.Random(ctx.seed).sample(range(len(train)), min(n, len(train))))
    picked = [train[i] for i in chosen]
    enc = tokenizer(
        [ex.text for ex in picked], pair_texts(picked), truncation=True, max_length=ctx.max_length
    )
    keys = [k for k in TOKENIZER_INPUTS if k in enc and k in inputs]
    return [{k: np.asarray(enc[k][i], dtype=np.int64) for k in keys} for i in range(len(picked))]
