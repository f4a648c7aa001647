"""Tokenised splits, length-grouped batches (little padding, so ~2x faster on CPU) and padding collation."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from edgecompress.data.examples import Example


class EncodedSplit(Dataset):
    """One split, tokenised once; items are dicts of int lists plus ``labels``."""

    def __init__(self, tokenizer, examples: Sequence[Example], label_ids: Sequence[int], max_length: int):
        pairs = [ex.text_pair for ex in examples] if examples and examples[0].text_pair is not None else None
        enc = tokenizer([ex.text for ex in examples], pairs, truncation=True, max_length=max_length)
        self.keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        self.columns = {k: enc[k] for k in self.keys}
        self.labels = list(label_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: self.columns[k][i] for k in self.keys}
        item["labels"] = self.labels[i]
        return item

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.columns["input_ids"]]

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(it["input_ids"]) for it in items)
        batch = {}
        for key in self.keys:
            pad = self.pad_id if key == "input_ids" else 0
            batch[key] = torch.tensor(
                [it[key] + [pad] * (width - len(it[key])) for it in items], dtype=torch.long
            )
        batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        return batch


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar length: shuffle, sort inside mega-batches, shuffle the batches.

    Every process draws the same order (seed + pass number), which Accelerate then shards.
    """

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool, seed: int, mega: int = 50):
        self.lengths, self.batch_size, self.shuffle, self.seed, self.mega = (
            lengths,
            batch_size,
            shuffle,
            seed,
            mega,
        )
        self.passes = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        idx = list(range(len(self.lengths)))
        if not self.shuffle:
            idx.sort(key=lambda i: self.lengths[i])
            yield from (idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size))
            return
        rng = random.Random(self.seed + self.passes)
        self.passes += 1
        rng.shuffle(idx)
        span = self.batch_size * self.mega
        batches = []
        for start in range(0, len(idx), span):
            chunk = sorted(idx[start : start + span], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        yield from batches


def make_loader(split: EncodedSplit, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    return DataLoader(
        split,
        batch_sampler=LengthGroupedBatches(split.lengths, batch_size, shuffle, seed),
        collate_fn=split.collate,
    )
