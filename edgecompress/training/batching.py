"""Tokenised splits, length-grouped batches (little padding, so ~2x faster on CPU) and padding collation."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from edgecompress.data.examples import Example, pair_texts
from edgecompress.inputs import TOKENIZER_INPUTS


class EncodedSplit(Dataset):
    """One split, tokenised once; items are dicts of int lists plus ``labels``. ``inputs``: the tokenizer
    outputs the model takes (edgecompress.inputs.model_inputs), the only ones batches carry."""

    def __init__(
        self,
        tokenizer,
        examples: Sequence[Example],
        label_ids: Sequence[int],
        max_length: int,
        inputs: Collection[str] = TOKENIZER_INPUTS,
    ):
        enc = tokenizer(
            [ex.text for ex in examples], pair_texts(examples), truncation=True, max_length=max_length
        )
        self.keys = [k for k in TOKENIZER_INPUTS if k in enc and k in inputs]
        self.columns = {k: enc[k] for k in self.keys}
        self.labels = list(label_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.extras: dict[str, np.ndarray] = {}  # per-example arrays carried into batches (teacher outputs)

    def attach(self, arrays: dict[str, np.ndarray]) -> None:
        """Per-example arrays (one row per example) that batches then carry as float tensors."""
        for name, values in arrays.items():
            if len(values) != len(self):
                raise ValueError(f"{name}: {len(values)} rows for {len(self)} examples")
        self.extras = dict(arrays)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: self.columns[k][i] for k in self.keys}
        item["labels"] = self.labels[i]
        for name, values in self.extras.items():
            item[name] = values[i]
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
        for name in self.extras:
            batch[name] = torch.from_numpy(np.stack([it[name] for it in items]).astype(np.float32))
        return batch

    def batches_in_order(self, batch_size: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """``(example indices, batch)`` over every example once, similar lengths together (for inference)."""
        for index in LengthGroupedBatches(self.lengths, batch_size, shuffle=False, seed=0):
            yield index, self.collate([self[i] for i in index])


class PairedSplit(Dataset):
    """One split tokenised twice, when student and teacher tokenizers differ (e.g. a trimmed vocabulary).

    Batches carry the student's inputs, ``teacher_inputs`` and ``aligned``: True where both token sequences
    are the same tokens (student ids mapped to teacher ids through their strings), so position-wise losses
    (attention maps, hidden states) are only taken where positions mean the same thing.
    """

    def __init__(self, student: EncodedSplit, teacher: EncodedSplit, student_to_teacher: dict[int, int]):
        self.student, self.teacher = student, teacher
        self.aligned = [
            len(s) == len(t) and all(student_to_teacher.get(i) == j for i, j in zip(s, t, strict=True))
            for s, t in zip(student.columns["input_ids"], teacher.columns["input_ids"], strict=True)
        ]

    def __len__(self) -> int:
        return len(self.student)

    def __getitem__(self, i: int) -> dict:
        return {"student": self.student[i], "teacher": self.teacher[i], "aligned": self.aligned[i]}

    @property
    def lengths(self) -> list[int]:
        return self.student.lengths

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.student.collate([it["student"] for it in items])
        teacher = self.teacher.collate([it["teacher"] for it in items])
        teacher.pop("labels")
        batch["teacher_inputs"] = teacher
        batch["aligned"] = torch.tensor([it["aligned"] for it in items])
        return batch


def token_id_map(student_tokenizer, teacher_tokenizer) -> dict[int, int]:
    """Student id -> teacher id for the tokens both vocabularies share."""
    teacher_vocab = teacher_tokenizer.get_vocab()
    return {i: teacher_vocab[t] for t, i in student_tokenizer.get_vocab().items() if t in teacher_vocab}


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


def make_loader(split: EncodedSplit | PairedSplit, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    return DataLoader(
        split,
        batch_sampler=LengthGroupedBatches(split.lengths, batch_size, shuffle, seed),
        collate_fn=split.collate,
    )
