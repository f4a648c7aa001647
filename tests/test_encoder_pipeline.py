"""The whole pipeline (teacher fine-tuning, distillation with attention and hidden transfer, pruning with
recovery in two steps, export, int8) on a tiny random MPNet teacher: heads go uniformly (prune.heads.scope:
uniform), the pruned checkpoint records its heads in edgecompress_heads and its artifacts run."""

from __future__ import annotations

import json

import pytest
from conftest import make_tokenizer, tiny_recipe


def test_mpnet_uniform_head_pruning_in_the_pipeline(tmp_path, tiny_csv, one_thread):
    import torch
    from transformers import MPNetConfig, MPNetModel

    from edgecompress.pipeline import run_recipe
    from edgecompress.recipe import recipe_from_dict

    folder = tmp_path / "mpnet"
    tok = make_tokenizer(folder)
    torch.manual_seed(0)
    cfg = MPNetConfig(
        vocab_size=len(tok.get_vocab()),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tok.pad_token_id,
    )
    MPNetModel(cfg).save_pretrained(folder, safe_serialization=True)
    prune = {
        "heads": {"mode": "structured", "fraction": 0.5, "scope": "uniform"},
        "ffn": {"fraction": 0.5},
        "steps": 2,
        "importance_batches": 2,
        "recovery": {"max_steps": 5, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1},
    }
    out = tmp_path / "run"
    recipe = tiny_recipe(
        folder, tiny_csv, out, prune=prune, quantization={"variants": [{"method": "int8_dynamic"}]}
    )
    summary = run_recipe(recipe_from_dict(recipe), log=lambda _m: None)
    rows = {r["variant"]: r for r in summary.rows}
    assert {"pruned-fp32", "pruned-int8-dynamic"} <= set(rows)
    rec = json.loads((out / "pruned" / "stage.json").read_text())["record"]
    assert rec["heads_after"] * 2 == rec["heads_before"]
    assert all(len(set(step["heads_per_layer"])) == 1 for step in rec["steps"])  # the same in every layer
    saved = sorted(p for p in out.rglob("config.json") if "edgecompress_heads" in p.read_text())
    assert saved, "no pruned checkpoint records edgecompress_heads"
    kept = json.loads(saved[0].read_text())["edgecompress_heads"]
    assert len({tuple(k) for k in kept}) == 1 and len(kept[0]) == 2  # the same 2 of 4 heads in every layer


def _teacher(model_type: str, folder, tok):
    import torch
    from test_encoder_adapters import config_for_tokenizer
    from transformers import AutoModel

    cfg = config_for_tokenizer(model_type, tok, max_position_embeddings=128)
    torch.manual_seed(0)
    AutoModel.from_config(cfg, attn_implementation="eager").save_pretrained(folder, safe_serialization=True)


@pytest.mark.parametrize("model_type", ["deberta-v2", "modernbert"])
def test_family_prunes_per_layer_in_the_pipeline(model_type, tmp_path, tiny_csv, one_thread):
    from edgecompress.pipeline import run_recipe
    from edgecompress.recipe import recipe_from_dict

    folder = tmp_path / model_type
    tok = make_tokenizer(folder)
    _teacher(model_type, folder, tok)
    prune = {
        "heads": {"mode": "structured", "count": 3},  # global: unequal heads per layer
        "ffn": {"fraction": 0.5, "scope": "global"},
        "importance_batches": 2,
        "recovery": {"max_steps": 5, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1},
    }
    out = tmp_path / "run"
    recipe = tiny_recipe(
        folder, tiny_csv, out, prune=prune, quantization={"variants": [{"method": "int8_dynamic"}]}
    )
    summary = run_recipe(recipe_from_dict(recipe), log=lambda _m: None)
    rows = {r["variant"]: r for r in summary.rows}
    assert {"pruned-fp32", "pruned-int8-dynamic"} <= set(rows)
    rec = json.loads((out / "pruned" / "stage.json").read_text())["record"]
    assert rec["heads_after"] == rec["heads_before"] - 3
    saved = sorted(p for p in out.rglob("config.json") if "edgecompress_heads" in p.read_text())
    assert saved and not json.loads(saved[0].read_text()).get("pruned_heads")
