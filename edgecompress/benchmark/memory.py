"""Peak resident memory of a fresh process that loads one model and runs one input: what an app pays.

Measured in a child process (``python -m edgecompress.benchmark.memory MODEL INPUTS.npz``) that imports
only numpy and onnxruntime, so neither this process's heap nor torch is counted. Linux reports the
high-water mark in /proc/self/status (VmHWM); elsewhere ``ru_maxrss`` is used.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def _rss_peak_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB elsewhere


def peak_rss(model_path: Path, feed: dict[str, np.ndarray], threads: int = 1, timeout: float = 600) -> dict:
    """``{"baseline_mb", "peak_mb", "model_mb"}``: after imports, after load + one run, and the difference."""
    from edgecompress.errors import StageError

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **feed)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgecompress.benchmark.memory",
                str(model_path),
                str(inputs),
                str(threads),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StageError(f"the memory probe failed: {tail[0]}", where=f"benchmark {model_path}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _probe(model_path: str, inputs_path: str, threads: int) -> dict:
    import onnxruntime as ort

    feed = dict(np.load(inputs_path))
    baseline = _rss_peak_mb()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    session.run(None, {k: v for k, v in feed.items() if k in names})
    peak = _rss_peak_mb()
    return {
        "baseline_mb": round(baseline, 1),
        "peak_mb": round(peak, 1),
        "model_mb": round(peak - baseline, 1),
    }


if __name__ == "__main__":
    print(json.dumps(_probe(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
