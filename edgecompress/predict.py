"""Run a deployable variant folder on text: ONNX Runtime through Optimum and a transformers pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

from edgecompress.errors import ModelError


def load_pipeline(folder: str | Path):
    """A transformers ``text-classification`` pipeline over the folder's ONNX model."""
    from edgecompress.quiet import quiet_third_party

    quiet_third_party()
    folder = Path(folder)
    if not (folder / "model.onnx").is_file():
        raise ModelError(
            "no model.onnx here (expected a variant folder such as runs/<name>/models/student-int8-dynamic)",
            where=str(folder),
        )
    if (folder / "manifest.json").is_file():
        from edgecompress.export.artifact import verify

        changed = verify(folder)
        if changed:
            raise ModelError(
                f"files differ from manifest.json (sha256): {', '.join(changed)}; the artifact was changed "
                "after edgecompress wrote it: rebuild it (edgecompress run) or restore the files",
                where=str(folder),
            )
    else:
        print(f"warning: {folder}: no manifest.json, the files cannot be verified", file=sys.stderr)
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    try:
        model = ORTModelForSequenceClassification.from_pretrained(folder, file_name="model.onnx")
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # ONNX Runtime raises its own types for a damaged graph
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"cannot load: {first}", where=str(folder)) from None
    return pipeline("text-classification", model=model, tokenizer=tokenizer)


def predict(folder: str | Path, texts: list[str]) -> list[dict]:
    """``[{"text", "label", "score"}]`` for each text."""
    if not texts:
        raise ModelError("no text given", where="predict")
    classify = load_pipeline(folder)
    return [{"text": t, **r} for t, r in zip(texts, classify(list(texts), truncation=True), strict=True)]
