"""Intel Neural Compressor 3.x (PyTorch API): RTN, GPTQ and accuracy-aware ``autotune`` of linear weights.

INC is imported only here, lazily, and its loggers are quieted: importing it is slow and noisy.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

from edgecompress.errors import StageError
from edgecompress.quiet import quiet_loggers

_INC_LOGGERS = ("neural_compressor", "torchao")


@contextlib.contextmanager
def quiet_inc():
    """INC logs every layer at INFO and prints its tuning tables to stdout: the user sees neither."""
    quiet_loggers(_INC_LOGGERS)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        quiet_loggers(_INC_LOGGERS)  # INC resets its logger's level while it works


def import_inc():
    # INC's logger takes its level from $LOGLEVEL when first imported (default INFO)
    before = os.environ.get("LOGLEVEL")
    os.environ["LOGLEVEL"] = "ERROR"
    try:
        with quiet_inc():
            import neural_compressor.torch.quantization as incq
    finally:
        if before is None:
            os.environ.pop("LOGLEVEL", None)
        else:
            os.environ["LOGLEVEL"] = before
    return incq


def anchored(names: list[str]) -> list[str]:
    """INC matches local-config keys with ``re.match``: exact module names need escaping and an end anchor."""
    return [re.escape(n) + "$" for n in names]


def inc_config(
    algorithm: str, bits: int, group_size: int, symmetric: bool, fp32: list[str], model_path: Path
):
    """An RTNConfig or GPTQConfig; modules named in ``fp32`` keep their float weights."""
    incq = import_inc()
    common = {"bits": bits, "group_size": group_size, "use_sym": symmetric}
    if algorithm == "rtn":
        config = incq.RTNConfig(**common, use_layer_wise=False)
        keep = incq.RTNConfig(dtype="fp32", use_layer_wise=False)
    elif algorithm == "gptq":
        # GPTQ resolves model_path even when it does not load layer by layer: a local folder avoids the hub
        config = incq.GPTQConfig(**common, model_path=str(model_path), act_order=False)
        keep = incq.GPTQConfig(dtype="fp32", model_path=str(model_path))
    else:  # pragma: no cover - the schema allows only these
        raise ValueError(algorithm)
    if fp32:
        config.set_local(anchored(fp32), keep)
    return config


def quantize(model, config, calibrate: Callable | None):
    """INC's prepare -> (calibrate) -> convert on ``model`` (modified in place and returned)."""
    incq = import_inc()
    with quiet_inc():
        prepared = incq.prepare(model, config)
        if calibrate is not None:
            calibrate(prepared)
        return incq.convert(prepared)


def quantized_layers(model) -> dict[str, tuple[int, int]]:
    """``{module name: (bits, group_size)}`` for INC's weight-only layers in ``model``."""
    from neural_compressor.torch.algorithms.weight_only.modules import INCWeightOnlyLinear

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, INCWeightOnlyLinear):
            out[name] = (int(module.bits), int(module.group_size))
    return out


def autotune(
    model,
    trials: list[dict],
    tolerable_loss: float,
    evaluate: Callable,
    calibrate: Callable,
    prepare_trial: Callable,
) -> tuple[object, dict]:
    """INC's ``autotune`` over ``trials``, in order; returns ``(INC's chosen model, the tuning record)``.

    Each trial is a dict with ``algorithm``, ``group_size``, ``keep_fp32`` (the patterns), ``quantized`` (the
    layer names meant to be quantized) and ``config`` (INC's config object).

    ``evaluate(model) -> accuracy`` scores the fp32 baseline first, then each trial's model after
    ``prepare_trial(model)`` (which applies what the ONNX artifact adds, e.g. quantized embeddings).
    INC's tuner keeps its history to itself, so the trials are recorded here, in the order INC runs
    them, and each trial's model is checked against the configuration it should have.
    """
    incq = import_inc()
    scores: list[float] = []
    built: list[dict] = []  # what INC actually quantized in each trial

    def eval_fn(candidate) -> float:
        index = len(scores)  # 0 = the fp32 baseline, i = trial i
        if index:
            layers = quantized_layers(candidate)
            expected = trials[index - 1]
            group_sizes = {g for _, g in layers.values()}
            built.append(
                {
                    "names": set(layers),
                    "group_sizes": sorted(group_sizes),
                    "as_configured": set(layers) == set(expected["quantized"])
                    and group_sizes == {expected["group_size"]},
                }
            )
            prepare_trial(candidate)
        scores.append(float(evaluate(candidate)))
        return scores[-1]

    tune = incq.TuningConfig(
        config_set=[t["config"] for t in trials], tolerable_loss=tolerable_loss, max_trials=len(trials)
    )
    with quiet_inc():
        best = incq.autotune(copy.deepcopy(model), tune_config=tune, eval_fn=eval_fn, run_fn=calibrate)
    baseline, results = scores[0], scores[1:]
    goal = baseline * (1 - tolerable_loss)
    # INC stops at the first trial that meets the goal, else it keeps the best one (first of equals)
    chosen = next(
        (i for i, r in enumerate(results) if r >= goal), max(range(len(results)), key=results.__getitem__)
    )
    if best is None:
        raise StageError("INC autotune returned no model", where="autotune")
    record = {
        "baseline_accuracy": baseline,
        "tolerable_loss": tolerable_loss,
        "goal_accuracy": goal,
        "chosen": chosen + 1,
        "met_goal": results[chosen] >= goal,
        "trials": [
            {
                "trial": i + 1,
                "algorithm": t["algorithm"],
                "group_size": t["group_size"],
                "keep_fp32": t["keep_fp32"],
                "accuracy": r,
                "relative_loss": (baseline - r) / baseline if baseline else 0.0,
                "meets_goal": r >= goal,
                # INC may not apply a trial exactly as configured (e.g. a layer meant to stay in float):
                # the report shows what it really built rather than what was asked
                "as_configured": b["as_configured"],
                "quantized_layers": len(b["names"]),
                "expected_quantized_layers": len(t["quantized"]),
                "built_group_sizes": b["group_sizes"],
            }
            for i, (t, r, b) in enumerate(zip(trials, results, built, strict=False))
        ],
    }
    if set(quantized_layers(best)) != built[chosen]["names"]:
        raise StageError("INC autotune's model does not match the trial recorded as chosen", where="autotune")
    return best, record
