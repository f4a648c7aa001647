"""Pruning: selection rules, physical removal with parity, importance, vocabulary trimming, the stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import UNUSED, export_model, onnx_accuracy, synthetic_rows, tiny_recipe, write_csv

from edgecompress.errors import RecipeError
from edgecompress.export.config import ExportConfig
from edgecompress.modeling import layers
from edgecompress.modeling.loading import load_classifier, load_saved_classifier, resolve
from edgecompress.prune import surgery
from edgecompress.prune.config import FfnPruningConfig, HeadPruningConfig, PruneConfig
from edgecompress.prune.importance import importance, normalise_per_layer
from edgecompress.prune.select import check_targets, select_heads, select_units
from edgecompress.prune.vocab import kept_token_ids, trim_vocabulary

LABELS = ["negative", "positive"]
IDS = torch.tensor([[2, 10, 20, 5, 33, 8, 3, 0], [2, 12, 9, 7, 3, 0, 0, 0]])
MASK = (IDS != 0).long()


@pytest.fixture()
def model(tiny_teacher):
    torch.manual_seed(0)
    m, _ = load_classifier(resolve(str(tiny_teacher), "t"), LABELS)
    return m.eval()


def logits(m):
    with torch.no_grad():
        return m.eval()(input_ids=IDS, attention_mask=MASK).logits


def masked_head_logits(m, layer_heads: dict[int, list[int]]):
    """Reference: the unpruned model with the given heads' outputs multiplied by zero."""
    hooks = []
    for i, p in enumerate(layers.layer_parts(m)):
        zero = layer_heads.get(i, [])
        if not zero:
            continue
        gate = torch.ones(p.num_heads)
        gate[zero] = 0

        def hook(_mod, _inp, out, gate=gate, d=p.head_size):
            ctx = out[0]
            b, n, _ = ctx.shape
            return ((ctx.view(b, n, -1, d) * gate[None, None, :, None]).view(b, n, -1), *out[1:])

        hooks.append(p.self_attention.register_forward_hook(hook))
    try:
        return logits(m)
    finally:
        for h in hooks:
            h.remove()


def test_removing_heads_equals_zeroing_them_and_shrinks_params(model):
    remove = {0: [1, 2], 1: [0], 3: [0, 1, 3]}
    expected = masked_head_logits(model, remove)
    before = sum(p.numel() for p in model.parameters())
    surgery.remove_heads(model, remove)
    assert layers.head_counts(model) == [2, 3, 4, 1]
    assert torch.allclose(logits(model), expected, atol=1e-5)
    d, hidden = 8, 32  # head size, width of the tiny BERT
    assert before - sum(p.numel() for p in model.parameters()) == 6 * (3 * (hidden * d + d) + d * hidden)
    assert model.config.pruned_heads == {0: [1, 2], 1: [0], 3: [0, 1, 3]}
    # a second round uses current positions: layer 0's position 1 is original head 3
    surgery.remove_heads(model, {0: [1]})
    assert layers.surviving_heads(model.config)[0] == [0]


def test_removing_ffn_units_equals_zeroing_them(model):
    remove = {0: list(range(10)), 2: [5, 6]}
    hooks = []
    for i, p in enumerate(layers.layer_parts(model)):
        gate = torch.ones(p.num_units)
        gate[remove.get(i, [])] = 0
        hooks.append(p.intermediate.register_forward_hook(lambda _m, _i, o, g=gate: o * g))
    expected = logits(model)
    for h in hooks:
        h.remove()
    surgery.remove_units(model, remove)
    assert layers.ffn_sizes(model) == [54, 64, 62, 64]
    assert model.config.edgecompress_ffn_sizes == [54, 64, 62, 64]
    assert torch.allclose(logits(model), expected, atol=1e-5)


def test_unequal_heads_and_widths_survive_save_load_export_onnx(model, tmp_path, tiny_csv):

    from edgecompress.data.config import DataConfig
    from edgecompress.data.stage import prepare

    surgery.remove_heads(model, {0: [0, 1, 2], 2: [3]})
    surgery.remove_units(model, {1: list(range(20))})
    expected = logits(model)
    model.save_pretrained(tmp_path / "pt")
    from conftest import make_tokenizer

    make_tokenizer(tmp_path / "pt")
    back = load_saved_classifier(tmp_path / "pt")
    assert layers.head_counts(back) == [1, 4, 3, 4] and layers.ffn_sizes(back) == [64, 44, 64, 64]
    assert torch.allclose(logits(back), expected, atol=1e-6)
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), max_length=16), 0)
    info = export_model(
        ExportConfig(parity_samples=16, parity_atol=1e-4), tmp_path / "pt", data, tmp_path / "onnx", "p"
    )
    assert (
        info["parity_vs_pytorch"]["max_abs_logit_diff"] < 1e-4
        and info["parity_vs_pytorch"]["argmax_agreement"] == 1.0
    )
    assert info["params"] == sum(p.numel() for p in back.parameters())


def test_uniform_pruned_checkpoint_reloads_with_plain_transformers(model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    surgery.remove_heads(model, {1: [2], 3: [0, 1]})
    surgery.remove_units(model, {i: list(range(16)) for i in range(4)})
    expected = logits(model)
    model.save_pretrained(tmp_path)
    back = AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation="eager")
    assert torch.allclose(logits(back), expected, atol=1e-6)


def test_drop_layer_when_allowed(model):
    surgery.remove_heads(model, {2: [0, 1, 2, 3]})
    surgery.drop_layers(model, [2])
    assert model.config.num_hidden_layers == 3 and len(layers.layer_parts(model)) == 3
    assert logits(model).shape == (2, 2)


def scores(*layers):
    return [np.array(x, dtype=float) for x in layers]


def test_threshold_removes_exactly_the_heads_below_it():
    s = scores([0.9, 0.1, 0.3, 0.2], [0.5, 0.5, 0.05, 0.6])
    out = select_heads(s, HeadPruningConfig(mode="threshold", threshold=0.25))
    assert out == {0: [1, 3], 1: [2]}


def test_threshold_that_empties_a_layer_is_refused():
    s = scores([0.1, 0.1], [0.9, 0.1])
    with pytest.raises(RecipeError, match="prune.heads.threshold: 0.5 removes all 2 heads of layer 0"):
        select_heads(s, HeadPruningConfig(mode="threshold", threshold=0.5))
    out = select_heads(s, HeadPruningConfig(mode="threshold", threshold=0.5, allow_layer_drop=True))
    assert out == {0: [0, 1], 1: [1]}


def test_structured_global_count_is_exact_and_keeps_one_head_per_layer():
    s = scores([0.01, 0.02, 0.03], [0.5, 0.6, 0.7])
    out = select_heads(s, HeadPruningConfig(mode="structured", count=3))
    assert sum(len(v) for v in out.values()) == 3
    assert out == {0: [0, 1], 1: [0]}  # the third-lowest (0.03) is layer 0's last head: spared


def test_structured_per_layer_fraction():
    s = scores([4, 3, 2, 1], [1, 2, 3, 4])
    out = select_heads(s, HeadPruningConfig(mode="structured", fraction=0.5, scope="per_layer"))
    assert out == {0: [3, 2], 1: [0, 1]}


def test_ffn_selection_global_and_per_layer():
    s = scores([0.1, 0.9, 0.2, 0.8], [0.3, 0.4])
    assert select_units(s, FfnPruningConfig(fraction=0.5)) == {0: [0, 2], 1: [0]}
    assert select_units(s, FfnPruningConfig(count=3, scope="global")) == {0: [0, 2], 1: [0]}


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            PruneConfig(heads={"mode": "structured", "count": 50}),
            "prune.heads.count: 50 heads to remove, but the student has 16 heads in 4 layers",
        ),
        (PruneConfig(heads={"mode": "structured", "count": 13}), "every layer keeps at least one"),
        (
            PruneConfig(heads={"mode": "structured", "count": 4, "scope": "per_layer"}),
            "4 heads to remove from layer 0, which has 4 (set allow_layer_drop",
        ),
        (
            PruneConfig(heads={"mode": "threshold", "threshold": 1.5}),
            "prune.heads.threshold: 1.5 would remove every head",
        ),
        (
            PruneConfig(ffn={"count": 64}),
            "prune.ffn.count: 64 units to remove per layer, but at most 63 can go",
        ),
    ],
)
def test_impossible_targets(cfg, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_targets(cfg, [4, 4, 4, 4], [64, 64, 64, 64])


def test_schema_level_target_errors():
    from edgecompress.recipe import recipe_from_dict

    for prune, msg in (
        ({"heads": {"mode": "structured"}}, "needs exactly one of 'fraction' or 'count'"),
        ({"heads": {"mode": "threshold"}}, "needs 'threshold'"),
        ({}, "nothing to prune"),
        ({"heads": {"mode": "structured", "fraction": 1.5}}, "prune.heads.fraction"),
    ):
        with pytest.raises(RecipeError, match=msg):
            recipe_from_dict({"name": "x", "prune": prune})


def test_gradient_importance_sees_a_dead_head(model):
    p = layers.layer_parts(model)[1]
    with torch.no_grad():
        p.attention_output.weight[:, 2 * p.head_size : 3 * p.head_size] = (
            0  # head 2 of layer 1 contributes nothing
        )
    batch = {"input_ids": IDS, "attention_mask": MASK, "labels": torch.tensor([0, 1])}
    heads, units = importance(model, [batch], "gradient")
    assert heads[1][2] == pytest.approx(0.0, abs=1e-9) and heads[1].min() == heads[1][2]
    assert all(abs(np.linalg.norm(h) - 1) < 1e-6 for h in heads)  # per-layer L2 normalisation
    mag_heads, _ = importance(model, [batch], "magnitude")
    assert int(np.argmin(mag_heads[1])) == 2
    ent_heads, _ = importance(model, [batch], "entropy")
    assert [len(h) for h in ent_heads] == [4, 4, 4, 4]


def test_normalise_per_layer():
    out = normalise_per_layer(scores([3, 4], [0, 0]))
    assert np.allclose(out[0], [0.6, 0.8]) and np.allclose(out[1], [0, 0])


def test_vocab_trimming_keeps_tokenisation_and_logits(model, tiny_teacher):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    texts = ["the movie was great", "boring and dull plot"]
    keep = kept_token_ids(tok, texts, None, 16, 1)
    before = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**before).logits
    new_tok = trim_vocabulary(model, tok, keep)
    assert len(new_tok.get_vocab()) == len(keep) < len(tok.get_vocab())
    after = new_tok(texts, padding=True, return_tensors="pt")
    remap = {old: new for new, old in enumerate(keep)}
    assert new_tok.cls_token_id == remap[tok.cls_token_id] != tok.cls_token_id  # special tokens moved too
    assert after["input_ids"].tolist() == [[remap[i] for i in row] for row in before["input_ids"].tolist()]
    with torch.no_grad():
        assert torch.allclose(model(**after).logits, expected, atol=1e-6)
    assert model.get_input_embeddings().num_embeddings == len(keep) == model.config.vocab_size
    # a word never seen in training still tokenises, from single characters, without [UNK]
    unseen = new_tok("fun")["input_ids"]
    assert new_tok.unk_token_id not in unseen and len(unseen) > 3


def _rows_with_rare_words():
    """The synthetic rows, six of them carrying one of the vocabulary's unused words once: seen fewer than
    min_frequency 2 times, such a word is trimmed and spelled out in characters, so where it lands in the training
    split the student and the teacher tokenise the text differently."""
    rows = synthetic_rows(400)
    for i, word in enumerate(UNUSED):
        rows[61 * i + 5]["text"] += f" {word}"
    return rows


def test_prune_stage_in_the_pipeline(tiny_teacher, tmp_path, one_thread):
    from edgecompress.data.examples import PreparedData
    from edgecompress.pipeline import run_recipe
    from edgecompress.recipe import recipe_from_dict

    prune = {
        "heads": {"mode": "structured", "fraction": 0.5},
        "ffn": {"fraction": 0.5},
        "vocab": {"enabled": True, "min_frequency": 2},
        "steps": 2,
        "importance_batches": 4,
        "recovery": {"max_steps": 20, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1},
    }
    out = tmp_path / "run"
    data_file = write_csv(tmp_path / "reviews.csv", _rows_with_rare_words())
    recipe = recipe_from_dict(
        tiny_recipe(
            tiny_teacher, data_file, out, prune=prune, quantization={"variants": [{"method": "int8_dynamic"}]}
        )
    )
    summary = run_recipe(recipe, log=lambda _m: None)
    rows = {r["variant"]: r for r in summary.rows}
    assert {"pruned-fp32", "pruned-int8-dynamic"} <= set(rows)
    rec = json.loads((out / "pruned" / "stage.json").read_text())["record"]
    assert rec["heads_before"] == 8 and rec["heads_after"] == 4  # 2 layers x 4 heads, half removed
    assert rec["units_after"] == rec["units_before"] // 2
    assert (
        len(rec["steps"]) == 2 and sum(rec["steps"][0]["heads_per_layer"]) == 6
    )  # half of the target per step
    assert rec["steps"][0]["attention_matching"] == "explicit heads"
    # the share of training texts both tokenizers split alike: those without a rare word, counted here
    data = PreparedData.load(out / "data")
    train = [ex.text.split() for ex in data.splits["train"]]
    rare = sum(any(w in UNUSED for w in words) for words in train)
    assert rare > 0
    for step in rec["steps"]:
        assert step["recovery"]["aligned_examples"] == round(1 - rare / len(train), 4)
    assert rec["vocab"]["after"] <= rec["vocab"]["before"] - len(UNUSED)
    assert rows["pruned-fp32"]["params"] < rows["student-fp32"]["params"]
    # the pruned artifacts' accuracy, recomputed from their files and trimmed tokenizers (any of these models
    # gets most labels right: the number must be theirs, not merely high)
    for variant in ("pruned-fp32", "pruned-int8-dynamic"):
        assert rows[variant]["accuracy"] == onnx_accuracy(out / "models" / variant, data), variant
    report = (out / "report.md").read_text()
    assert "## Pruning" in report and "| layer | heads kept |" in report
    assert (out / "head_importance.png").is_file()
    scores = json.loads((out / "pruned" / "importance.json").read_text())
    assert sum(len(v) for v in scores["pruned_heads"].values()) == 4


def test_impossible_target_fails_before_any_training(tiny_teacher, tiny_csv, tmp_path):
    from edgecompress.pipeline import run_recipe
    from edgecompress.recipe import recipe_from_dict

    out = tmp_path / "run"
    recipe = recipe_from_dict(
        tiny_recipe(tiny_teacher, tiny_csv, out, prune={"heads": {"mode": "structured", "count": 99}})
    )
    with pytest.raises(
        RecipeError, match="prune.heads.count: 99 heads to remove, but the student has 8 heads"
    ):
        run_recipe(recipe, log=lambda _m: None)
    assert not (out / "teacher").exists() and not (out / "data").exists()


def test_fractions_round_up_so_at_least_that_share_goes():
    from edgecompress.prune.select import fraction_of

    assert fraction_of(0.4, 36) == 15  # 14.4 -> 15: at least 40% removed
    assert fraction_of(0.5, 1536) == 768 and fraction_of(0.5, 36) == 18
    out = select_heads([np.arange(12.0)] * 3, HeadPruningConfig(mode="structured", fraction=0.4))
    assert sum(len(v) for v in out.values()) == 15
