"""Classify a 1,000-word text with every variant folder of a run through the three documented clients:
Optimum ORTModel + transformers pipeline (default arguments), bare ONNX Runtime + tokenizers, edgecompress predict."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

run = Path(sys.argv[1])
words = (
    "a gorgeous , witty and moving film whose actors make every scene count , though the plot drags "
    "in the middle and the ending is too neat "
).split()
text = " ".join((words * 60)[:1000])
print(f"text: {len(text.split())} words")
for folder in sorted(p for p in (run / "models").iterdir() if (p / "model.onnx").is_file()):
    row = {"variant": folder.name}
    try:
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoTokenizer, pipeline

        clf = pipeline(
            "text-classification",
            model=ORTModelForSequenceClassification.from_pretrained(folder),
            tokenizer=AutoTokenizer.from_pretrained(folder),
        )
        out = clf(text)[0]
        row["pipeline"] = f"{out['label']} {out['score']:.4f}"
    except Exception as exc:  # noqa: BLE001
        row["pipeline"] = f"FAILED: {str(exc).splitlines()[0][:120]}"
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        enc = tok.encode(text)
        sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        feed = {
            "input_ids": np.array([enc.ids], np.int64),
            "attention_mask": np.array([enc.attention_mask], np.int64),
        }
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.array([enc.type_ids], np.int64)
        logits = sess.run(None, feed)[0]
        labels = json.loads((folder / "config.json").read_text())["id2label"]
        row["onnxruntime+tokenizers"] = (
            f"{labels[str(int(logits.argmax(-1)[0]))]} ({len(enc.ids)} tokens fed)"
        )
    except Exception as exc:  # noqa: BLE001
        row["onnxruntime+tokenizers"] = f"FAILED: {str(exc).splitlines()[0][:120]}"
    proc = subprocess.run(
        [sys.executable, "-m", "edgecompress.cli", "predict", str(folder), text],
        capture_output=True,
        text=True,
    )
    row["predict"] = (
        (proc.stdout.split("\t")[:2] and " ".join(proc.stdout.split("\t")[:2]))
        if proc.returncode == 0
        else f"FAILED rc={proc.returncode}: {proc.stderr.strip().splitlines()[-1][:120]}"
    )
    print(json.dumps(row))
