"""Fixtures: a tiny randomly initialised BERT with its own small vocabulary, and synthetic sentiment data.

Everything is built in the test run: no hub, no large downloads, seconds per model.
"""

from __future__ import annotations

import csv
import importlib.util
import random
from pathlib import Path

import pytest

from edgecompress.quiet import quiet_third_party

quiet_third_party()

POSITIVE = ["good", "great", "fun", "moving", "brilliant", "charming", "funny", "smart"]
NEGATIVE = ["bad", "awful", "boring", "dull", "clumsy", "tedious", "flat", "weak"]
FILLER = [
    "the",
    "movie",
    "film",
    "plot",
    "actors",
    "story",
    "was",
    "is",
    "a",
    "very",
    "quite",
    "and",
    "with",
    "scenes",
    "ending",
]
# as in BERT's vocabulary, unused slots sit between [PAD] and the other special tokens, so trimming moves them
SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNUSED = ["zebra", "quantum", "opera", "galaxy", "violin", "tundra"]  # in the vocabulary, never in the data


def synthetic_rows(n: int, seed: int = 0, groups: int = 20) -> list[dict]:
    """Sentences whose label is decided by the sentiment word they contain."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, 5) + [rng.choice(POSITIVE if label == "positive" else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" {i}", "label": label, "movie": f"m{(i // 3) % groups}"})
    return rows


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    vocab = (
        SPECIALS
        + POSITIVE
        + NEGATIVE
        + FILLER
        + [str(i) for i in range(10)]
        + list("abcdefghijklmnopqrstuvwxyz")
        + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
        + UNUSED
    )
    vocab = list(dict.fromkeys(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    return tok


def make_tiny_bert(
    folder: Path,
    labels: list[str] | None = None,
    layers: int = 4,
    hidden: int = 32,
    heads: int = 4,
    intermediate: int = 64,
    seed: int = 0,
    with_head: bool = False,
):
    """A random tiny BERT saved as a local model folder (safetensors + tokenizer)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    tok = make_tokenizer(folder)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok.get_vocab()),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=128,
    )
    if with_head:
        labels = labels or ["negative", "positive"]
        cfg.num_labels = len(labels)
        cfg.id2label = dict(enumerate(labels))
        cfg.label2id = {lbl: i for i, lbl in enumerate(labels)}
        model = BertForSequenceClassification(cfg)
    else:
        model = BertModel(cfg)
    model.save_pretrained(folder, safe_serialization=True)
    return model


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A headless tiny BERT (like the embedded MiniLM: no classifier, fine-tuned by the pipeline)."""
    folder = tmp_path_factory.mktemp("tiny_teacher")
    make_tiny_bert(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", synthetic_rows(400))


def tiny_recipe(teacher_dir: Path, data_path: Path, out: Path, **sections) -> dict:
    """A complete recipe for the tiny model and data; ``sections`` replace or extend top-level parts."""
    recipe = {
        "version": 1,
        "name": "tiny",
        "output_dir": str(out),
        "seed": 0,
        "device": "cpu",
        "mixed_precision": "no",  # the same figures on every CPU (bf16 is tested on its own)
        "data": {"source": "csv", "path": str(data_path), "group_column": "movie", "max_length": 16},
        "teacher": {
            "model": str(teacher_dir),
            "training": {"max_steps": 60, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1},
        },
        "student": {"num_layers": 2},
        "distill": {
            "training": {"max_steps": 60, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1}
        },
        "quantization": {
            "variants": [
                {"method": "int8_dynamic", "name": "int8-dynamic"},
                {"method": "int8_static", "name": "int8-static", "calibration_samples": 16},
            ]
        },
        "export": {"parity_samples": 16, "parity_atol": 1e-4},
        "benchmark": {"batch_sizes": [1, 4], "threads": [1], "runs": 5, "warmup": 1},
        "report": {"plots": True},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


@pytest.fixture
def one_thread():
    """One torch thread for tiny training steps: on the shared 2 cores two threads crawl when another process
    holds them (and the numbers do not depend on how busy the machine is)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_on_labels(model, tokenizer, data, steps: int = 80, learning_rate: float = 3e-3) -> None:
    """A few plain steps on the synthetic sentiment task (fixed seed): enough for the model to read the sentiment
    word, so a test can name the label it must give (the fixture makes it certain) instead of accepting any."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    texts, _ = data.texts("train")
    labels = torch.tensor(data.label_ids("train"))
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(texts), (32,), generator=gen)
        enc = tokenizer([texts[i] for i in idx], padding=True, return_tensors="pt")
        loss = model(**enc, labels=labels[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.set_num_threads(threads)


def kl_to_teacher(teacher_logits, student_logits) -> float:
    """Mean KL(teacher || student) of the softmax distributions (T = 1), computed here with numpy, apart from
    the losses under test. On the synthetic data any training gets the labels right (one word decides them), so
    claims of learning *from the teacher* are measured on its distribution instead: this gap must fall."""
    import numpy as np

    def log_softmax(x):
        x = np.asarray(x, dtype=np.float64)
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    t, s = log_softmax(teacher_logits), log_softmax(student_logits)
    return float((np.exp(t) * (t - s)).sum(-1).mean())


def onnx_accuracy(folder: Path, data, split: str = "test", max_length: int = 16) -> float:
    """Accuracy of a variant folder's model.onnx, read with its own tokenizer, computed here with plain ONNX
    Runtime and numpy (not with the benchmark's code): what a report's accuracy column must equal."""
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer

    examples = data.splits[split]
    enc = AutoTokenizer.from_pretrained(folder)(
        [ex.text for ex in examples],
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="np",
    )
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    logits = session.run(None, {k: v.astype(np.int64) for k, v in enc.items() if k in names})[0]
    gold = np.array([data.labels.index(ex.label) for ex in examples])
    return float(np.mean(logits.argmax(-1) == gold))


def saved_model_logits(folder: Path, texts: list[str], max_length: int = 16):
    """Logits of the model saved in ``folder`` (any edgecompress checkpoint) with its own tokenizer: one padded
    batch, a plain forward pass, nothing from the evaluation code under test."""
    import torch
    from transformers import AutoTokenizer

    from edgecompress.modeling.loading import load_saved_classifier

    model = load_saved_classifier(folder).eval()
    enc = AutoTokenizer.from_pretrained(folder)(
        texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )
    with torch.no_grad():  # single texts: token type ids are all 0, the models' default
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.float().numpy()


def pytorch_accuracy(folder: Path, data, split: str = "test", max_length: int = 16) -> float:
    """Accuracy of the model saved in ``folder`` on ``split``, from ``saved_model_logits``."""
    import numpy as np

    examples = data.splits[split]
    logits = saved_model_logits(folder, [ex.text for ex in examples], max_length)
    gold = np.array([data.labels.index(ex.label) for ex in examples])
    return float(np.mean(logits.argmax(-1) == gold))


def load_script(name: str):
    """A script under benchmarks/ as a module (they are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stage_context(data, max_length: int = 16, seed: int = 0, recipe: dict | None = None, accelerator=None):
    """A StageContext for calling one stage's ``run`` directly (no pipeline)."""
    from edgecompress.context import StageContext

    return StageContext(accelerator, data, seed, max_length, lambda _msg: None, recipe or {})


def export_model(cfg, model_dir: Path, data, out: Path, variant: str, max_length: int = 16, recipe=None):
    """The export stage on one model folder: ``out`` becomes a deployable ONNX variant folder."""
    from edgecompress.export import stage as export_stage

    return export_stage.run(
        cfg,
        export_stage.ExportInputs(model_dir, variant),
        stage_context(data, max_length, recipe=recipe),
        out,
    )
