"""Where the labelled text comes from and how it is split."""

from __future__ import annotations

import codecs
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecompress.config_base import StageConfig
from edgecompress.config_limits import MAX_COUNT, MAX_TOKENS, SEED_MAX

DataSource = Literal["embedded", "csv", "tsv", "jsonl", "folder", "hub"]


class DataConfig(StageConfig):
    """Labelled text: an embedded corpus, local files (CSV/TSV/JSON Lines/one folder per label) or a hub dataset.

    Give either ``path`` (one collection, split here) or ``train`` (+ optional ``validation``/``test``;
    a missing split is carved out of train). For ``source: hub`` the split fields are split names.
    Relative paths are relative to the current working directory.
    """

    source: DataSource = Field("embedded", description="Kind of data source.")
    name: str | None = Field(
        None, description="Embedded corpus ('rotten_tomatoes') or hub dataset id ('glue')."
    )
    subset: str | None = Field(None, description="Hub dataset configuration, e.g. 'sst2'.")
    path: str | None = Field(None, description="A file or folder holding all examples; split here.")
    train: str | None = Field(None, description="Training split: file/folder, or hub split name.")
    validation: str | None = Field(None, description="Validation split (carved from train when absent).")
    test: str | None = Field(None, description="Test split (carved from train when absent).")
    text_column: str = Field("text", description="Column/key holding the text.")
    text_pair_column: str | None = Field(None, description="Second text of a pair task, if any.")
    label_column: str = Field("label", description="Column/key holding the label (name or id).")
    group_column: str | None = Field(
        None, description="Split by this column so no group (e.g. movie) lands in two splits."
    )
    split_seed: int | None = Field(
        None,
        ge=0,
        le=SEED_MAX,
        description="Seed of the split (and of max_*_samples); default the recipe's seed. Pin it to vary "
        "training seeds over the same test split.",
    )
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    encoding: str = Field(
        "utf-8",
        description="Text encoding of local files (csv/tsv/jsonl/folder); a UTF-8 byte-order mark is dropped.",
    )
    fallback_encoding: str | None = Field(
        None,
        description="Decode a file that is not valid in 'encoding' with this one instead (e.g. latin-1 for the "
        "odd legacy file in a folder corpus); the data stage records which files it re-decoded. null: such a "
        "file is an error naming it and the byte.",
    )
    max_length: int = Field(64, ge=8, le=MAX_TOKENS, description="Tokens per example after truncation.")
    max_train_samples: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Keep only this many training examples."
    )
    max_eval_samples: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Keep only this many validation and test examples each."
    )

    @field_validator("encoding", "fallback_encoding")
    @classmethod
    def _known_text_encoding(cls, name: str | None) -> str | None:
        """A codec that decodes bytes to text: rot13 and base64 are codecs too, but not text encodings, and
        would fail only when the data stage reads the first file."""
        if name is not None:
            try:
                codec = codecs.lookup(name)
            except LookupError:
                raise ValueError(f"unknown encoding '{name}' (e.g. utf-8, latin-1, cp1252, utf-16)") from None
            if not codec._is_text_encoding:
                raise ValueError(f"'{name}' is not a text encoding (e.g. utf-8, latin-1, cp1252, utf-16)")
        return name

    @model_validator(mode="after")
    def _one_layout(self) -> DataConfig:
        if self.source == "embedded":
            self.name = self.name or "rotten_tomatoes"
            for field in ("path", "train", "validation", "test", "subset"):
                if getattr(self, field) is not None:
                    raise ValueError(
                        f"'{field}' is not used with source 'embedded' (use source: csv/tsv/jsonl/folder)"
                    )
            return self
        if self.source == "hub":
            if not self.name:
                raise ValueError("source 'hub' needs 'name' (a hub dataset id such as 'glue')")
            if self.path is not None:
                raise ValueError("source 'hub' takes split names in train/validation/test, not 'path'")
            self.train = self.train or "train"
            return self
        if (self.path is None) == (self.train is None):
            raise ValueError(f"source '{self.source}' needs exactly one of 'path' (split here) or 'train'")
        if self.path is not None and (self.validation or self.test):
            raise ValueError("'validation'/'test' files go with 'train', not with 'path'")
        return self
