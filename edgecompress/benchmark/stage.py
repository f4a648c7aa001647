"""Benchmark stage: size, parameters, test accuracy/F1 (from ONNX Runtime outputs) and latency per variant."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edgecompress.benchmark.config import BenchmarkConfig
from edgecompress.benchmark.latency import measure_latency
from edgecompress.benchmark.machine import hardware_tag, machine_info
from edgecompress.data.examples import PreparedData
from edgecompress.export.artifact import onnx_size_mb, read_manifest
from edgecompress.export.onnx import ort_logits, ort_session
from edgecompress.training.metrics import classification_metrics

STAGE_VERSION = 1


def evaluate_test_split(
    folder: Path, tokenizer, data: PreparedData, max_length: int, batch_size: int
) -> dict:
    texts, pairs = data.texts("test")
    logits = ort_logits(ort_session(folder / "model.onnx"), tokenizer, texts, max_length, batch_size, pairs)
    metrics = classification_metrics(logits.argmax(-1), data.label_ids("test"), len(data.labels))
    return {**metrics, "test_samples": len(texts)}


def run(
    cfg: BenchmarkConfig,
    variants: dict[str, Path],
    data: PreparedData,
    max_length: int,
    sequence_length: int,
    out_dir: Path,
    log=print,
) -> dict:
    from transformers import AutoTokenizer

    tokenizers = {name: AutoTokenizer.from_pretrained(folder) for name, folder in variants.items()}
    results: dict[str, dict] = {}
    for name, folder in variants.items():
        manifest = read_manifest(folder)
        results[name] = {
            "artifact": str(folder),
            "precision": manifest.get("precision"),
            "size_mb": round(onnx_size_mb(folder), 3),
            "params": manifest.get("params"),
            **evaluate_test_split(folder, tokenizers[name], data, max_length, cfg.eval_batch_size),
        }
        log(f"  {name}: accuracy {results[name]['accuracy']:.4f}, {results[name]['size_mb']:.1f} MB")
    texts, pairs = data.texts("validation")
    latency = measure_latency(
        {name: (folder / "model.onnx", tokenizers[name]) for name, folder in variants.items()},
        texts,
        pairs,
        sequence_length,
        cfg.batch_sizes,
        cfg.threads,
        cfg.runs,
        cfg.warmup,
        progress=lambda msg: log(f"  {msg}"),
    )
    record = {"machine": machine_info(), "hardware": hardware_tag(), "variants": results, "latency": latency}
    (out_dir / "benchmark.json").write_text(json.dumps(record, indent=2))
    with open(out_dir / f"latency-{hardware_tag()}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(latency[0]))
        writer.writeheader()
        writer.writerows(latency)
    return {"hardware": record["hardware"], "variants": list(variants)}
