"""Benchmark stage: size, parameters, test and validation accuracy/F1 (from ONNX Runtime outputs) and latency
per variant."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from edgecompress.benchmark.config import BenchmarkConfig, MobileProfile
from edgecompress.benchmark.latency import TimingPlan, fixed_length_inputs, measure_latency
from edgecompress.context import StageContext
from edgecompress.data.examples import PreparedData
from edgecompress.export.artifact import CHECKS, onnx_size_mb, read_manifest
from edgecompress.export.onnx import ort_logits, ort_session
from edgecompress.machine import hardware_tag, machine_info
from edgecompress.training.metrics import split_metrics

STAGE_VERSION = 3  # 3: validation accuracy and macro-F1 of every variant
RESULTS_FILE = "benchmark.json"


@dataclass(frozen=True)
class BenchmarkInputs:
    variants: dict[str, Path]  # variant name -> its folder, in report order
    sequence_length: int  # tokens per timed input


class BenchmarkRecord(TypedDict):
    hardware: str
    variants: list[str]


def evaluate_split(
    folder: Path, tokenizer, data: PreparedData, split: str, max_length: int, batch_size: int
) -> dict:
    """Accuracy and macro-F1 of a variant folder on ``split``, from ONNX Runtime outputs, and the split's size."""
    texts, pairs = data.texts(split)
    logits = ort_logits(ort_session(folder / "model.onnx"), tokenizer, texts, max_length, batch_size, pairs)
    return {**split_metrics(logits, data, split), "samples": len(texts)}


def evaluate_test_split(
    folder: Path, tokenizer, data: PreparedData, max_length: int, batch_size: int
) -> dict:
    test = evaluate_split(folder, tokenizer, data, "test", max_length, batch_size)
    return {"accuracy": test["accuracy"], "f1_macro": test["f1_macro"], "test_samples": test["samples"]}


def evaluate_variant(folder: Path, tokenizer, data: PreparedData, max_length: int, batch_size: int) -> dict:
    """Test figures (what the report shows) and validation figures (what variants are chosen on: choose on
    validation, report on test)."""
    validation = evaluate_split(folder, tokenizer, data, "validation", max_length, batch_size)
    return {
        **evaluate_test_split(folder, tokenizer, data, max_length, batch_size),
        "validation_accuracy": validation["accuracy"],
        "validation_f1_macro": validation["f1_macro"],
        "validation_samples": validation["samples"],
    }


def median_length(tokenizer, texts: list[str], pairs, max_length: int) -> int:
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    return int(np.median([len(ids) for ids in enc["input_ids"]]))


def mobile_profile(
    cfg: MobileProfile, variants: dict[str, Path], tokenizers: dict, ctx: StageContext
) -> dict:
    """Batch 1, 1 thread, at a short and a typical length; peak RSS of a fresh process per variant."""
    from edgecompress.benchmark.memory import peak_rss

    texts, pairs = ctx.data.texts("validation")
    first = next(iter(tokenizers.values()))
    typical = cfg.typical_length or median_length(first, texts, pairs, ctx.max_length)
    latency = []
    for length in sorted({cfg.short_length, typical}):
        latency += measure_latency(
            {name: (folder / "model.onnx", tokenizers[name]) for name, folder in variants.items()},
            texts,
            pairs,
            TimingPlan(length, [1], [1], cfg.runs, cfg.warmup),
        )
        ctx.log(f"  mobile profile: timed {length} tokens")
    memory = {}
    if cfg.memory:
        for name, folder in variants.items():
            feed = fixed_length_inputs(tokenizers[name], texts, 1, typical, pairs)
            memory[name] = peak_rss(folder / "model.onnx", {k: np.asarray(v) for k, v in feed.items()})
        ctx.log("  mobile profile: peak memory measured")
    return {"short_length": cfg.short_length, "typical_length": typical, "latency": latency, "memory": memory}


def run(cfg: BenchmarkConfig, inputs: BenchmarkInputs, ctx: StageContext, out_dir: Path) -> BenchmarkRecord:
    """Writes ``benchmark.json`` (every variant's size, accuracy, checks and latencies) and a latency CSV
    named by hardware."""
    from transformers import AutoTokenizer

    variants = inputs.variants
    tokenizers = {name: AutoTokenizer.from_pretrained(folder) for name, folder in variants.items()}
    results: dict[str, dict] = {}
    for name, folder in variants.items():
        manifest = read_manifest(folder)
        results[name] = {
            "artifact": ctx.relative(folder),
            "precision": manifest.get("precision"),
            "size_mb": round(onnx_size_mb(folder), 3),
            "params": manifest.get("params"),
            **evaluate_variant(folder, tokenizers[name], ctx.data, ctx.max_length, cfg.eval_batch_size),
            **{k: manifest[k] for k in CHECKS if manifest.get(k)},
        }
        r = results[name]
        ctx.log(
            f"  {name}: accuracy {r['accuracy']:.4f} (validation {r['validation_accuracy']:.4f}), "
            f"{r['size_mb']:.1f} MB"
        )
    texts, pairs = ctx.data.texts("validation")
    latency = measure_latency(
        {name: (folder / "model.onnx", tokenizers[name]) for name, folder in variants.items()},
        texts,
        pairs,
        TimingPlan(inputs.sequence_length, cfg.batch_sizes, cfg.threads, cfg.runs, cfg.warmup),
        progress=lambda msg: ctx.log(f"  {msg}"),
    )
    record = {"machine": machine_info(), "hardware": hardware_tag(), "variants": results, "latency": latency}
    if cfg.mobile is not None:
        record["mobile"] = mobile_profile(cfg.mobile, variants, tokenizers, ctx)
    (out_dir / RESULTS_FILE).write_text(json.dumps(record, indent=2))
    with open(out_dir / f"latency-{hardware_tag()}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(latency[0]))
        writer.writeheader()
        writer.writerows(latency)
    return {"hardware": record["hardware"], "variants": list(variants)}
