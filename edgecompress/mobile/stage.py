"""Mobile stage: one variant in, its ``.ort`` file out, with ONNX Runtime's usability verdict and a run check.

Conversion and checking use ONNX Runtime's own tools (``onnxruntime.tools.convert_onnx_models_to_ort`` in
a child process, as its CLI; ``mobile_helpers.usability_checker`` as a library, its log captured).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecompress.context import StageContext
from edgecompress.errors import StageError
from edgecompress.export.artifact import copy_companions
from edgecompress.mobile.config import MobileConfig

STAGE_VERSION = 2  # 2: loads_and_runs is checked in a fresh process (run_check), vs_onnx from that run

# .ort vs .onnx logits: the same graph, its optimizations applied offline instead of at load time
ORT_LOGITS_ATOL = 1e-4

# what an app does: a process that has imported nothing but numpy and onnxruntime opens the file as ORT format
# (a mobile build reads nothing else) and runs it; argv: model.ort, inputs.npz, logits.npy
_FRESH_PROCESS_RUN = """
import sys
import numpy as np
import onnxruntime as ort
opts = ort.SessionOptions()
opts.log_severity_level = 3
opts.add_session_config_entry("session.load_model_format", "ORT")
session = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
feed = dict(np.load(sys.argv[2]))
np.save(sys.argv[3], session.run(None, feed)[0])
"""


@dataclass(frozen=True)
class MobileInputs:
    variant_dir: Path  # the ONNX variant folder to convert


_VERDICT = re.compile(
    r"Model should perform well with (.+?) (as is|if modified to have fixed input shapes): (\w+)"
)


def convert_to_ort(onnx_path: Path, out_dir: Path, cfg: MobileConfig) -> Path:
    """``out_dir/model.ort`` (and ONNX Runtime's required_operators.config for a reduced build)."""
    env = {**os.environ, "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL": cfg.optimization_level}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxruntime.tools.convert_onnx_models_to_ort",
            "--optimization_style",
            "Fixed",
            "--target_platform",
            cfg.target_platform,
            "--output_dir",
            str(out_dir),
            str(onnx_path),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    produced = sorted(out_dir.glob("*.ort"))
    if proc.returncode != 0 or len(produced) != 1:
        lines = (proc.stderr + proc.stdout).strip().splitlines() or ["no output"]
        raise StageError(
            f"ONNX Runtime could not convert the model to .ort: {lines[-1]}", where=str(onnx_path)
        )
    target = out_dir / "model.ort"
    if produced[0] != target:
        produced[0].rename(target)
    for config in list(out_dir.glob("*.config")):
        config.rename(out_dir / "required_operators.config")
    return target


def required_operators(config: Path) -> dict[str, list[str]]:
    """Operators a reduced ONNX Runtime build needs, by domain (from the converter's config file)."""
    ops: dict[str, set[str]] = {}
    for line in config.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            domain, _, names = line.split(";", 2)
            ops.setdefault(domain, set()).update(names.split(","))
    return {domain: sorted(names) for domain, names in sorted(ops.items())}


def usability(onnx_path: Path) -> dict:
    """ONNX Runtime's mobile usability checker: per NNAPI / CoreML, YES, NO or MAYBE; CPU EP otherwise."""
    from onnxruntime.tools.mobile_helpers import usability_checker

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("edgecompress.mobile_usability")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Collect()
    logger.addHandler(handler)
    try:
        try_eps = usability_checker.analyze_model(onnx_path, skip_optimize=False, logger=logger)
    finally:
        logger.removeHandler(handler)
    verdicts: dict[str, dict] = {}
    for line in lines:
        match = _VERDICT.search(line)
        if match:
            ep, when, verdict = match.groups()
            key = "as_is" if when == "as is" else "with_fixed_shapes"
            verdicts.setdefault(ep, {})[key] = verdict
    return {
        "execution_providers": verdicts,
        "try_nnapi_or_coreml": bool(try_eps),
        "recommendation": "compare NNAPI/CoreML with the CPU EP" if try_eps else "CPU EP",
    }


def run_in_fresh_process(ort_path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    """The logits of ``ort_path`` on ``feed``, computed in a new Python process that loads the file as ORT
    format; a StageError when it does not load or run there."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, logits = Path(tmp) / "inputs.npz", Path(tmp) / "logits.npy"
        np.savez(inputs, **feed)
        proc = subprocess.run(
            [sys.executable, "-c", _FRESH_PROCESS_RUN, str(ort_path), str(inputs), str(logits)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not logits.is_file():
            lines = (proc.stderr + proc.stdout).strip().splitlines() or ["no output"]
            raise StageError(
                f"the .ort file does not load and run in a fresh ONNX Runtime process: {lines[-1]}",
                where=str(ort_path),
            )
        return np.load(logits)


def run_check(ort_path: Path, onnx_path: Path, feed: dict[str, np.ndarray]) -> dict:
    """``loads_and_runs``: the .ort file loads and runs in a fresh process and computes the .onnx file's logits
    (within ORT_LOGITS_ATOL) on ``feed``; ``vs_onnx``: the comparison; ``run_check``: what was checked."""
    from edgecompress.export.onnx import compare_logits, ort_session

    reference = ort_session(onnx_path).run(None, feed)[0]
    comparison = {**compare_logits(reference, run_in_fresh_process(ort_path, feed)), "atol": ORT_LOGITS_ATOL}
    return {
        "loads_and_runs": comparison["max_abs_logit_diff"] <= ORT_LOGITS_ATOL,
        "run_check": (
            f"{ort_path.name} loaded as ORT format in a fresh process (numpy and onnxruntime only) and run on "
            f"{comparison['samples']} validation examples; its logits within {ORT_LOGITS_ATOL:g} of "
            f"{onnx_path.name}'s"
        ),
        "vs_onnx": comparison,
    }


def run(cfg: MobileConfig, inputs: MobileInputs, ctx: StageContext, out_dir: Path) -> dict:
    from transformers import AutoTokenizer

    from edgecompress.benchmark.latency import fixed_length_inputs
    from edgecompress.benchmark.memory import peak_rss
    from edgecompress.export.artifact import onnx_size_mb
    from edgecompress.export.onnx import ort_feed, ort_session

    variant_dir, max_length = inputs.variant_dir, ctx.max_length
    onnx_path = variant_dir / "model.onnx"
    ort_path = convert_to_ort(onnx_path, out_dir, cfg)
    copy_companions(variant_dir, out_dir)  # tokenizer and config: the folder is deployable as it is
    tokenizer = AutoTokenizer.from_pretrained(variant_dir)
    texts, pairs = ctx.data.texts("validation", cfg.check_samples)
    session = ort_session(onnx_path)  # the .onnx file declares the inputs both files take
    encoded = tokenizer(
        texts, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="np"
    )
    check = run_check(ort_path, onnx_path, ort_feed(session, dict(encoded)))
    feed = ort_feed(session, fixed_length_inputs(tokenizer, texts, 1, max_length, pairs))
    record = {
        "variant": variant_dir.name,
        "ort_file": ort_path.name,
        "ort_size_mb": round(ort_path.stat().st_size / 1e6, 3),
        "onnx_size_mb": round(onnx_size_mb(variant_dir), 3),
        "target_platform": cfg.target_platform,
        "optimization_level": cfg.optimization_level,
        "required_operators": required_operators(out_dir / "required_operators.config"),
        **check,
        "peak_rss": {
            **peak_rss(ort_path, {k: np.asarray(v) for k, v in feed.items()}),
            "tokens": max_length,
        },
        "usability": usability(onnx_path),
    }
    (out_dir / "mobile.json").write_text(json.dumps(record, indent=2))
    return record
