"""Export a transformers classifier to ONNX through Optimum and check it against PyTorch."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from edgecompress.errors import StageError
from edgecompress.export.clip import clip_file, truncating_tokenizer
from edgecompress.inputs import graph_inputs, model_inputs, select


def export(model, tokenizer, out_dir: Path, opset: int, max_length: int) -> Path:
    """``out_dir/model.onnx`` with dynamic batch and sequence axes, plus config and tokenizer files.

    Exports the loaded model (Optimum's ``onnx_export_from_model``), so pruned models with unequal layer
    widths export the same way as plain ones; BiLSTM / TextCNN students go through torch's exporter. The
    graph truncates its inputs to ``max_length`` tokens itself (export/clip.py), so it takes any length, and
    the tokenizer is saved truncating at ``max_length``.
    """
    onnx_path = _export_graph(model, tokenizer, out_dir, opset)
    clip_file(onnx_path, max_length)
    truncating_tokenizer(tokenizer, max_length).save_pretrained(out_dir)
    return onnx_path


def _export_graph(model, tokenizer, out_dir: Path, opset: int) -> Path:
    from optimum.exporters.onnx import onnx_export_from_model

    from edgecompress.modeling.classic import ClassicClassifier

    if isinstance(model, ClassicClassifier):
        return export_classic(model, tokenizer, out_dir, opset)
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_export_from_model(
            model.eval(),
            output=out_dir,
            opset=opset,
            task="text-classification",
            device="cpu",
            do_validation=False,
            preprocessors=[tokenizer],
        )
    model.config.save_pretrained(out_dir)
    onnx_path = out_dir / "model.onnx"
    if not onnx_path.is_file():
        raise StageError(f"Optimum wrote no model.onnx into {out_dir}", where="export")
    return onnx_path


def export_classic(model, tokenizer, out_dir: Path, opset: int) -> Path:
    """A BiLSTM / TextCNN student as ``model.onnx`` (inputs input_ids and attention_mask, output logits; dynamic
    batch and sequence axes), with its config beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    sample = tokenizer(["a first example text", "a second"], padding=True, return_tensors="pt")
    args = (sample["input_ids"], sample["attention_mask"])

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids, attention_mask).logits

    onnx_path = out_dir / "model.onnx"
    # TextCNN convolutions as MatMul (int8 kernels instead of ConvInteger); the parity check that follows
    # compares the file with the Conv1d model
    model.convs_as_matmul = True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(
                LogitsOnly(model),
                args,
                str(onnx_path),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={
                    n: {0: "batch_size", 1: "sequence_length"} for n in ("input_ids", "attention_mask")
                }
                | {"logits": {0: "batch_size"}},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.convs_as_matmul = False
    model.config.save_pretrained(out_dir)
    return onnx_path


def ort_session(
    onnx_path: Path | bytes, threads: int = 0, optimization: str = "all", profile_prefix: str | None = None
):
    """The one way artifacts are run and timed; ``profile_prefix`` turns on ONNX Runtime's profiler."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    opts.log_severity_level = 3
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    if threads != 1:
        # idle workers of one session spin and steal the cores of the next one when sessions are interleaved
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def ort_feed(session, encoded: dict) -> dict:
    """Only the inputs the graph declares (e.g. no token_type_ids for RoBERTa), as int64."""
    return {k: np.asarray(v, dtype=np.int64) for k, v in select(encoded, graph_inputs(session)).items()}


def batched_logits(
    run, tokenizer, texts: list[str], max_length: int, batch_size: int, pairs, tensors: str
) -> np.ndarray:
    """Logits of ``run(encoded_batch)`` over ``texts`` in batches padded to their longest member."""
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[i : i + batch_size],
            None if pairs is None else pairs[i : i + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors=tensors,
        )
        out.append(run(enc))
    return np.concatenate(out)


def ort_logits(
    session, tokenizer, texts: list[str], max_length: int, batch_size: int = 32, pairs=None
) -> np.ndarray:
    return batched_logits(
        lambda enc: session.run(None, ort_feed(session, dict(enc)))[0],
        tokenizer,
        texts,
        max_length,
        batch_size,
        pairs,
        "np",
    )


@torch.no_grad()
def torch_logits(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 32, pairs=None
) -> np.ndarray:
    model.eval()
    names = model_inputs(model)
    return batched_logits(
        lambda enc: model(**select(enc, names)).logits.float().numpy(),
        tokenizer,
        texts,
        max_length,
        batch_size,
        pairs,
        "pt",
    )


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict:
    return {
        "samples": int(reference.shape[0]),
        "max_abs_logit_diff": float(np.max(np.abs(reference - candidate))),
        "argmax_agreement": float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
    }


def long_input_logits(
    session, tokenizer, texts: list[str], max_length: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Logits of a batch (a text made longer than ``max_length`` tokens, and a short one) as a client that
    does not truncate gives it, and as the tokenizer truncates it (the same when the graph clips its inputs);
    and the untruncated width."""
    batch = [" ".join([texts[0]] * (2 * max_length)), texts[-1]]
    untruncated = tokenizer(batch, padding=True, truncation=False, return_tensors="np")
    truncated = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    logits = [session.run(None, ort_feed(session, dict(enc)))[0] for enc in (untruncated, truncated)]
    return logits[0], logits[1], int(untruncated["input_ids"].shape[1])


def check_parity(
    model, tokenizer, onnx_path: Path, texts: list[str], max_length: int, atol: float, pairs=None
) -> dict:
    """Max |logit difference| and argmax agreement, PyTorch vs ONNX Runtime, and the same input untruncated vs
    truncated (the graph's own truncation); a StageError beyond ``atol``."""
    session = ort_session(onnx_path)
    reference = torch_logits(model, tokenizer, texts, max_length, pairs=pairs)
    candidate = ort_logits(session, tokenizer, texts, max_length, pairs=pairs)
    parity = compare_logits(reference, candidate)
    parity["atol"] = atol
    where = f"export {onnx_path.parent.name}"
    if parity["max_abs_logit_diff"] > atol:
        raise StageError(
            f"ONNX logits differ from PyTorch by {parity['max_abs_logit_diff']:.2e} (> parity_atol {atol:g}) "
            f"on {parity['samples']} validation samples; argmax agreement {parity['argmax_agreement']:.4f}",
            where=where,
        )
    untruncated, truncated, tokens = long_input_logits(session, tokenizer, texts, max_length)
    diff = float(np.max(np.abs(untruncated - truncated)))
    parity["long_input"] = {"tokens": tokens, "max_abs_logit_diff_vs_truncated": diff}
    if diff > atol:
        raise StageError(
            f"a {tokens}-token input gives logits {diff:.2e} away from the same input truncated to "
            f"{max_length} tokens (> parity_atol {atol:g}): the graph's input clip is wrong",
            where=where,
        )
    return parity
