"""Run a deployable variant folder on text with ONNX Runtime and the folder's tokenizer.

Nothing else is needed, which is why this works for every artifact the pipeline writes, the BiLSTM and
TextCNN students included (Optimum's ORTModel classes load only transformers architectures).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edgecompress.errors import ModelError


def _verified(folder: Path) -> dict:
    """The folder's manifest (empty when there is none), after checking its files against it."""
    if not (folder / "model.onnx").is_file():
        raise ModelError(
            "no model.onnx here (expected a variant folder such as runs/<name>/models/student-int8-dynamic)",
            where=str(folder),
        )
    if not (folder / "manifest.json").is_file():
        print(f"warning: {folder}: no manifest.json, the files cannot be verified", file=sys.stderr)
        return {}
    from edgecompress.export.artifact import read_manifest, verify

    changed = verify(folder)
    if changed:
        raise ModelError(
            f"files differ from manifest.json (sha256): {', '.join(changed)}; the artifact was changed "
            "after edgecompress wrote it: rebuild it (edgecompress run) or restore the files",
            where=str(folder),
        )
    return read_manifest(folder)


class Classifier:
    """A variant folder ready to classify: ONNX Runtime session, tokenizer, label names, input length."""

    def __init__(self, folder: str | Path):
        from edgecompress.quiet import quiet_third_party

        quiet_third_party()
        folder = Path(folder)
        manifest = _verified(folder)
        from transformers import AutoTokenizer

        from edgecompress.export.onnx import ort_session

        try:
            self.session = ort_session(folder / "model.onnx")
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            config = json.loads((folder / "config.json").read_text())
        except Exception as exc:  # ONNX Runtime raises its own types for a damaged graph
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"cannot load: {first}", where=str(folder)) from None
        self.labels = {int(k): v for k, v in config["id2label"].items()}
        recipe_length = manifest.get("recipe", {}).get("data", {}).get("max_length")
        self.max_length = recipe_length or min(self.tokenizer.model_max_length, 512)

    def __call__(self, texts: list[str]) -> list[dict]:
        from edgecompress.export.onnx import ort_feed

        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="np"
        )
        logits = self.session.run(None, ort_feed(self.session, dict(enc)))[0]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        return [
            {"text": t, "label": self.labels[int(p.argmax())], "score": float(p.max())}
            for t, p in zip(texts, probs, strict=True)
        ]


def predict(folder: str | Path, texts: list[str]) -> list[dict]:
    """``[{"text", "label", "score"}]`` for each text."""
    if not texts:
        raise ModelError("no text given", where="predict")
    return Classifier(folder)(texts)
