"""Deployable variant folders: model.onnx + tokenizer + config.json (id2label) + manifest.json."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TypedDict

from edgecompress import __version__

MANIFEST = "manifest.json"
_NOT_HASHED = {MANIFEST, "stage.json"}


class ArtifactChecks(TypedDict, total=False):
    """What a quantizer checked about its own artifact; the benchmark and the report carry these along."""

    accuracy_guard: dict  # int8: validation accuracy vs fp32, node groups kept in float (quantize/guard.py)
    inc_vs_onnx: dict  # weight-only: INC's PyTorch model vs the ONNX artifact (argmax agreement, max delta)
    autotune: dict | None  # weight-only autotune: every trial and the choice


CHECKS = tuple(ArtifactChecks.__annotations__)


class ArtifactInfo(ArtifactChecks, total=False):
    """What the export and quantize stages record about an artifact (their stage record, and the manifest)."""

    precision: str
    params: int
    labels: list[str]
    source_model: str  # the PyTorch model folder it was exported from (fp32 variants)
    source_variant: str  # the fp32 variant it was quantized from
    parity_vs_pytorch: dict


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_table(folder: Path) -> dict[str, dict]:
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name not in _NOT_HASHED
    }


def onnx_size_mb(folder: Path) -> float:
    """Size of the ONNX graph and any external weight files, in MB (10^6 bytes)."""
    total = sum(
        p.stat().st_size
        for p in folder.iterdir()
        if p.suffix in (".onnx", ".data") or p.name.endswith(".onnx_data")
    )
    return total / 1e6


_NOT_COMPANIONS = {MANIFEST, "stage.json", "ort_config.json"}  # bookkeeping, and Optimum's own record


def copy_companions(source: Path, target: Path) -> list[str]:
    """Copy a variant folder's companion files (tokenizer, config.json: all but the model and bookkeeping)
    into a folder derived from it, leaving files the deriving tool already wrote there; returns what it
    copied. The one rule for every quantizer and the .ort conversion."""
    import shutil

    copied = []
    for path in sorted(source.iterdir()):
        if not path.is_file() or path.suffix in (".onnx", ".ort", ".data") or path.name in _NOT_COMPANIONS:
            continue
        if not (target / path.name).exists():
            shutil.copy2(path, target / path.name)
            copied.append(path.name)
    return copied


def write_manifest(folder: Path, variant: str, recipe: dict, info: dict) -> dict:
    manifest = {
        "format": "edgecompress-artifact/1",
        "variant": variant,
        "edgecompress_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "files": file_table(folder),
        **info,
        "metrics": info.get("metrics", {}),
        "recipe": recipe,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def add_metrics(folder: Path, metrics: dict) -> None:
    """Record benchmark figures in an artifact's manifest (the hashed files are unchanged)."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["metrics"] = {**manifest.get("metrics", {}), **metrics}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    tmp.replace(path)


def verify(folder: Path) -> list[str]:
    """Files whose sha256 no longer matches the manifest (empty when the artifact is intact)."""
    recorded = read_manifest(folder)["files"]
    current = file_table(folder)
    return sorted(
        name for name in recorded if current.get(name, {}).get("sha256") != recorded[name]["sha256"]
    )
