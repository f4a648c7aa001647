"""Encoder families through their adapters (modeling.encoders): the student, distillation, pruning with reload,
the narrow initialisation and position trimming on tiny random BERT, ELECTRA, RoBERTa, XLM-R, DistilBERT,
MPNet, DeBERTa-v3 (deberta-v2) and ModernBERT models, and the one-line refusals of the families edgecompress cannot compress (yet).

Every model is built from a transformers config here (4 layers, width 32, 4 heads, vocabulary 100): no
downloads. The reference paths below are spelled out per family on purpose, apart from the adapters.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import tiny_recipe

from edgecompress.distill.config import DistillConfig, StudentConfig
from edgecompress.distill.losses import DistillationLoss
from edgecompress.distill.stage import disable_attention_dropout, plan_matching
from edgecompress.errors import ModelError, RecipeError
from edgecompress.modeling import layers
from edgecompress.modeling.embeddings import trim_positions
from edgecompress.modeling.encoders import adapter_for
from edgecompress.modeling.loading import load_saved_classifier
from edgecompress.modeling.narrow import principal_directions
from edgecompress.modeling.student import build_student
from edgecompress.preflight import check_shapes
from edgecompress.prune import surgery
from edgecompress.prune.importance import gradient_importance
from edgecompress.recipe import recipe_from_dict

LABELS = ["negative", "positive"]
VOCAB, LENGTH = 100, 10

# model_type -> (config kwargs, layer list under the base model, attention output path, FFN output path, pad id)
FAMILIES = {
    "bert": (
        dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64),
        "encoder.layer",
        "attention.output.dense",
        "output.dense",
        0,
    ),
    "electra": (
        dict(
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
        ),
        "encoder.layer",
        "attention.output.dense",
        "output.dense",
        0,
    ),
    "roberta": (
        dict(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
            pad_token_id=1,
            type_vocab_size=1,
        ),
        "encoder.layer",
        "attention.output.dense",
        "output.dense",
        1,
    ),
    "xlm-roberta": (
        dict(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
            pad_token_id=1,
            type_vocab_size=1,
        ),
        "encoder.layer",
        "attention.output.dense",
        "output.dense",
        1,
    ),
    "distilbert": (
        dict(dim=32, n_layers=4, n_heads=4, hidden_dim=64),
        "transformer.layer",
        "attention.out_lin",
        "ffn.lin2",
        0,
    ),
    "mpnet": (
        dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64),
        "encoder.layer",
        "attention.attn.o",
        "output.dense",
        1,
    ),
    "deberta-v2": (  # DeBERTa-v3's layout: relative positions only, separate position projections, no types
        dict(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
            relative_attention=True,
            position_buckets=16,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            share_att_key=False,
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            type_vocab_size=0,
        ),
        "encoder.layer",
        "attention.output.dense",
        "output.dense",
        0,
    ),
    "modernbert": (  # global attention every 2 layers: roles [first global, local, global, local]
        dict(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
            global_attn_every_n_layers=2,
            local_attention=4,
            attention_dropout=0.1,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            cls_token_id=1,
            sep_token_id=2,
            reference_compile=False,
        ),
        "layers",
        "attn.Wo",
        "mlp.Wo",
        0,
    ),
}
TYPES = list(FAMILIES)
UNIFORM_HEADS = {"mpnet"}  # one relative-bias column per head, shared by all layers
OWN_HEAD_RECORD = {
    "mpnet",
    "deberta-v2",
    "modernbert",
}  # config.pruned_heads cannot rebuild them: edgecompress_heads
NO_POSITION_TABLE = {"deberta-v2", "modernbert"}
INIT_LAYERS = {"modernbert": [0, 3]}  # a student layer takes the role of its index: [first global, local]
OFFSET = {"roberta": 2, "xlm-roberta": 2, "mpnet": 2}  # padding index 1, real tokens from 2


def head_plan(model_type: str, per_layer: dict[int, list[int]]) -> dict[int, list[int]]:
    """The heads a test removes: MPNet removes the first layer's choice from every layer."""
    if model_type in UNIFORM_HEADS:
        return {i: per_layer.get(min(per_layer), []) for i in range(4)}
    return per_layer


def p_basis(teacher, samples):
    return principal_directions(teacher, samples, 24)[0]


def head_record(model) -> list[list[int]] | dict:
    """Where the kept heads are written: edgecompress_heads (MPNet) or transformers' pruned_heads."""
    if model.config.model_type in OWN_HEAD_RECORD:
        return model.config.edgecompress_heads
    return model.config.pruned_heads


def build(model_type: str, seed: int = 0):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    kwargs = FAMILIES[model_type][0]
    positions = 40 + (2 if FAMILIES[model_type][4] else 0)
    cfg = AutoConfig.for_model(
        model_type, vocab_size=VOCAB, max_position_embeddings=positions, num_labels=2, **kwargs
    )
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(
        copy.deepcopy(cfg), attn_implementation="eager"
    ).eval()


def config_for_tokenizer(model_type: str, tokenizer, **extra):
    """The family's tiny config sized to a real tokenizer, with its special ids (ModernBERT's [CLS]/[SEP]
    double as bos/eos)."""
    from transformers import AutoConfig

    kwargs = {k: v for k, v in FAMILIES[model_type][0].items() if not k.endswith("_token_id")}
    if model_type == "modernbert":
        ids = (tokenizer.cls_token_id, tokenizer.sep_token_id)
        kwargs |= dict(cls_token_id=ids[0], sep_token_id=ids[1], bos_token_id=ids[0], eos_token_id=ids[1])
    return AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer.get_vocab()),
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
        **extra,
    )


def batch(model_type: str, length: int = LENGTH, seed: int = 0) -> dict:
    pad = FAMILIES[model_type][4]
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (3, length), generator=g)
    mask = torch.ones_like(ids)
    ids[1, length - 3 :], mask[1, length - 3 :] = pad, 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs).logits


def layer_list(model, model_type):
    return model.base_model.get_submodule(FAMILIES[model_type][1])


def masked_logits(model, model_type, inputs, heads: dict[int, list[int]], units: dict[int, list[int]]):
    """Reference: the unpruned model with the heads' contexts and the units' activations multiplied by zero."""
    _, _, attn_out, ffn_out, _ = FAMILIES[model_type]
    d = 32 // 4
    hooks = []
    for i, layer in enumerate(layer_list(model, model_type)):
        head_gate, unit_gate = torch.ones(4), torch.ones(64)
        head_gate[heads.get(i, [])] = 0
        unit_gate[units.get(i, [])] = 0

        def zero_heads(_m, args, g=head_gate):
            x = args[0]
            return ((x.reshape(*x.shape[:-1], 4, d) * g[:, None]).reshape(x.shape),)

        hooks.append(layer.get_submodule(attn_out).register_forward_pre_hook(zero_heads))
        hooks.append(
            layer.get_submodule(ffn_out).register_forward_pre_hook(lambda _m, a, g=unit_gate: (a[0] * g,))
        )
    try:
        return logits(model, inputs)
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("model_type", TYPES)
def test_student_from_teacher_layers_distils_with_attention_and_hidden_transfer(model_type, one_thread):
    teacher = build(model_type)
    init = INIT_LAYERS.get(model_type, [1, 3])
    student, info = build_student(teacher, StudentConfig(num_layers=2, init_layers=init), LABELS)
    assert info["init_layers"] == init and student.config.model_type == model_type
    for s, t in zip(layer_list(student, model_type), init, strict=True):
        t_state = layer_list(teacher, model_type)[t].state_dict()
        assert all(torch.equal(v, t_state[k]) for k, v in s.state_dict().items())
    # a narrower student (width_init teacher): the hidden term goes through the learned projections
    narrow_cfg = StudentConfig(
        num_layers=2, hidden_size=24, num_attention_heads=3, intermediate_size=32, width_init="teacher"
    )
    inputs, labels = batch(model_type), torch.tensor([0, 1, 0])
    student, _ = build_student(teacher, narrow_cfg, LABELS, [inputs])
    cfg = DistillConfig(head_mismatch="average")
    mapping = plan_matching(cfg, student, teacher)
    assert mapping == [0, 3]
    assert disable_attention_dropout(student) == 2  # one attention-probability dropout per layer
    loss_module = DistillationLoss(cfg, mapping, 24, 32)
    assert loss_module.projections is not None
    opt = torch.optim.AdamW([*student.parameters(), *loss_module.parameters()], lr=1e-3)
    student.train()
    losses = []
    for _ in range(2):
        with torch.no_grad():
            t_out = teacher(**inputs, output_attentions=True, output_hidden_states=True)
        s_out = student(**inputs, output_attentions=True, output_hidden_states=True)
        total, parts = loss_module(s_out, t_out, labels, inputs["attention_mask"])
        assert {"ce", "kd", "att", "hid"} <= set(parts) and torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(parts["loss"])
    assert losses[1] != losses[0]


@pytest.mark.parametrize("model_type", TYPES)
def test_pruned_heads_and_units_equal_the_masked_model_and_reload(model_type, tmp_path):
    model = build(model_type)
    inputs = batch(model_type)
    heads, units = head_plan(model_type, {0: [1, 2], 2: [0]}), {1: list(range(10)), 3: [5, 6]}
    expected = masked_logits(model, model_type, inputs, heads, units)
    surgery.remove_heads(model, heads)
    surgery.remove_units(model, units)
    trim_positions(model, LENGTH)  # as the prune stage shrinks the tables
    counts = [2] * 4 if model_type in UNIFORM_HEADS else [2, 4, 3, 4]
    assert layers.head_counts(model) == counts and layers.ffn_sizes(model) == [64, 54, 64, 62]
    if model_type in UNIFORM_HEADS:
        assert head_record(model) == [[0, 3]] * 4 and not model.config.pruned_heads
        assert model.mpnet.encoder.relative_attention_bias.weight.shape == (32, 2)
    elif model_type in OWN_HEAD_RECORD:
        assert model.config.edgecompress_heads == [[0, 3], [0, 1, 2, 3], [1, 2, 3], [0, 1, 2, 3]]
        assert not model.config.pruned_heads
    else:
        assert head_record(model) == {0: [1, 2], 2: [0]}
    assert torch.allclose(logits(model, inputs), expected, atol=1e-5)
    model.save_pretrained(tmp_path, safe_serialization=True)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["edgecompress_ffn_sizes"] == [64, 54, 64, 62]
    assert saved[adapter_for(model).keys.ffn] == 64
    back = load_saved_classifier(tmp_path)
    assert layers.head_counts(back) == counts and layers.ffn_sizes(back) == [64, 54, 64, 62]
    assert torch.allclose(logits(back, inputs), expected, atol=1e-5)


def test_distilbert_ffn_width_is_written_as_hidden_dim(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = build("distilbert")
    inputs = batch("distilbert")
    surgery.remove_units(model, {i: list(range(16)) for i in range(4)})
    expected = logits(model, inputs)
    assert model.config.hidden_dim == 48 and "intermediate_size" not in model.config.to_dict()
    model.save_pretrained(tmp_path, safe_serialization=True)
    back = AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation="eager")
    assert torch.allclose(logits(back, inputs), expected, atol=1e-6)


@pytest.mark.parametrize("model_type", TYPES)
def test_gradient_importance_sees_a_dead_head(model_type, one_thread):
    model = build(model_type)
    layer = layer_list(model, model_type)[1]
    attn_out = layer.get_submodule(FAMILIES[model_type][2])
    with torch.no_grad():
        attn_out.weight[:, 8:16] = 0  # head 1 of layer 1 writes nothing
    heads, units = gradient_importance(model, [{**batch(model_type), "labels": torch.tensor([0, 1, 0])}])
    assert [len(h) for h in heads] == [4] * 4 and [len(u) for u in units] == [64] * 4
    assert heads[1][1] == 0 and all(heads[1][h] > 0 for h in (0, 2, 3))
    magnitude = layers.magnitude_importance(model)[0]
    assert magnitude[1][1] < magnitude[1][0]


@pytest.mark.parametrize("model_type", TYPES)
def test_narrow_student_starts_from_the_teacher(model_type, one_thread):
    teacher = build(model_type)
    samples = [batch(model_type, seed=s) for s in range(3)]
    cfg = StudentConfig(
        num_layers=2, hidden_size=24, num_attention_heads=3, intermediate_size=32, width_init="teacher"
    )
    student, info = build_student(teacher, cfg, LABELS, samples)
    assert info["init"].startswith("teacher") and info["hidden_size"] == 24
    adapter = adapter_for(student)
    assert adapter.hidden_size(student.config) == 24 and adapter.ffn_size(student.config) == 32
    assert layers.head_counts(student) == [3, 3] and layers.ffn_sizes(student) == [32, 32]
    if model_type == "deberta-v2":  # the pooler follows the width; the relative table is read like the stream
        assert student.config.pooler_hidden_size == 24
        rel = teacher.deberta.encoder.rel_embeddings.weight
        assert torch.allclose(student.deberta.encoder.rel_embeddings.weight, rel @ p_basis(teacher, samples))
        s_attn = student.deberta.encoder.layer[0].attention.self
        assert s_attn.pos_key_proj.out_features == s_attn.pos_query_proj.out_features == 24
    if model_type == "modernbert":  # the GLU keeps both halves of each kept unit; final_norm is narrowed too
        assert student.model.layers[0].mlp.Wi.out_features == 64 and student.config.reference_compile is False
        assert torch.allclose(
            student.model.final_norm.weight,
            (p_basis(teacher, samples) ** 2).T @ teacher.model.final_norm.weight,
        )
    if model_type == "distilbert":
        assert student.config.dim == 24 and student.config.hidden_dim == 32
        assert "intermediate_size" not in student.config.to_dict()
    p, _ = principal_directions(teacher, samples, 24)
    words = (teacher.get_input_embeddings().weight, student.get_input_embeddings().weight)
    if model_type == "electra":  # narrower tables: copied, the projection carries them into the stream
        assert torch.equal(words[1], words[0])
        project = teacher.electra.embeddings_project
        assert torch.allclose(student.electra.embeddings_project.weight, p.T @ project.weight, atol=1e-5)
    else:
        assert torch.allclose(words[1], words[0] @ p, atol=1e-5)
    assert torch.isfinite(logits(student, batch(model_type))).all()


def test_electra_student_as_wide_as_the_tables_is_refused():
    teacher = build("electra")  # tables 16 wide, stream 32: a projection writes the stream
    cfg = StudentConfig(
        num_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32, width_init="teacher"
    )
    with pytest.raises(
        RecipeError, match="^student.hidden_size: hidden_size 16 equals the teacher's embedding_size"
    ):
        build_student(teacher, cfg, LABELS, [batch("electra")])


@pytest.mark.parametrize("model_type", TYPES)
def test_trim_positions_keeps_the_rows_inputs_use(model_type):
    model = build(model_type)
    inputs = batch(model_type, length=LENGTH)
    expected = logits(model, inputs)
    offset = OFFSET.get(model_type, 0)
    done = trim_positions(model, LENGTH)
    if model_type in NO_POSITION_TABLE:  # relative positions only: nothing to trim
        assert done == {} and torch.equal(logits(model, inputs), expected)
        return
    table = model.base_model.embeddings.position_embeddings
    assert done == {"positions": LENGTH + offset, "positions_before": 40 + offset}
    assert table.num_embeddings == LENGTH + offset == model.config.max_position_embeddings
    assert torch.allclose(logits(model, inputs), expected, atol=1e-6)


@pytest.mark.parametrize("model_type", TYPES)
def test_factorised_word_table_and_trimmed_positions_reload(model_type, tmp_path):
    from edgecompress.modeling.embeddings import FactorizedEmbedding, factorize_word_embeddings

    model = build(model_type)
    inputs = batch(model_type)
    surgery.remove_heads(model, head_plan(model_type, {1: [3]}))
    factorize_word_embeddings(model, 8)
    trim_positions(model, LENGTH)
    expected = logits(model, inputs)
    model.save_pretrained(tmp_path, safe_serialization=True)
    back = load_saved_classifier(tmp_path)
    assert isinstance(back.get_input_embeddings(), FactorizedEmbedding)
    if model_type not in NO_POSITION_TABLE:
        table = back.base_model.embeddings.position_embeddings
        assert table.num_embeddings == model.config.max_position_embeddings
    assert layers.head_counts(back) == ([3] * 4 if model_type in UNIFORM_HEADS else [4, 3, 4, 4])
    assert torch.allclose(logits(back, inputs), expected, atol=1e-5)


REFUSED = {
    "albert": "shares one set of layer weights",
    "gpt2": "not supported by the distill stage",
}


@pytest.mark.parametrize("model_type", list(REFUSED))
def test_refused_families_fail_preflight_in_one_line(model_type, tmp_path, tiny_csv):
    from transformers import AutoConfig

    folder = tmp_path / model_type
    AutoConfig.for_model(model_type).save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"")  # preflight reads configs only
    recipe = recipe_from_dict(tiny_recipe(folder, tiny_csv, tmp_path / "out"))
    with pytest.raises(ModelError) as err:
        check_shapes(recipe)
    line = str(err.value)
    assert "\n" not in line and line.startswith("teacher.model: ")
    assert f"'{model_type}'" in line and REFUSED[model_type] in line and "distill" in line


def test_a_refused_student_model_names_its_field_and_the_prune_stage(tiny_teacher, tiny_csv, tmp_path):
    from transformers import AlbertConfig

    folder = tmp_path / "albert"
    AlbertConfig().save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"")
    recipe = tiny_recipe(
        tiny_teacher,
        tiny_csv,
        tmp_path / "out",
        student={"model": str(folder)},
        prune={"ffn": {"fraction": 0.5}},
    )
    with pytest.raises(ModelError, match=r"^student.model: model type 'albert': .* the prune stage") as err:
        check_shapes(recipe_from_dict(recipe))
    assert "\n" not in str(err.value)


def test_refusal_names_the_stage_that_cannot_run():
    from transformers import AlbertConfig, AlbertModel

    model = AlbertModel(
        AlbertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, vocab_size=VOCAB)
    )
    with pytest.raises(ModelError, match=r"^prune: model type 'albert': ALBERT shares .* the prune stage"):
        layers.layer_parts(model)


def test_validate_prints_the_refusal_as_one_line(tmp_path, tiny_csv):
    import yaml
    from transformers import GPT2Config
    from typer.testing import CliRunner

    from edgecompress.cli import app

    folder = tmp_path / "gpt2"
    GPT2Config().save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(folder, tiny_csv, tmp_path / "out")))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(
        "error: teacher.model: model type 'gpt2' is not supported by the distill stage"
    )


MPNET_LINE = (
    "prune.heads: model type 'mpnet': MPNet's relative position bias is shared by all layers (one column per head): "
    "the prune stage can only remove heads from every layer at once (prune.heads.scope: uniform); feed-forward "
    "pruning is unaffected"
)


def test_mpnet_heads_go_from_every_layer_or_not_at_all():
    model = build("mpnet")
    with pytest.raises(ModelError) as err:
        surgery.remove_heads(model, {0: [1], 2: [0]})
    assert str(err.value) == MPNET_LINE
    assert layers.head_counts(model) == [4] * 4  # refused before any slicing


@pytest.mark.parametrize(
    "heads, refused",
    [
        ({"mode": "structured", "count": 1, "scope": "per_layer"}, True),
        ({"mode": "structured", "fraction": 0.25}, True),  # global
        ({"mode": "threshold", "threshold": 0.1}, True),
        ({"mode": "structured", "count": 1, "scope": "uniform"}, False),
        ({"mode": "none"}, False),
    ],
)
def test_mpnet_head_selection_other_than_uniform_fails_preflight(
    heads, refused, tmp_path, tiny_teacher, tiny_csv
):
    from transformers import AutoTokenizer

    folder = tmp_path / "mpnet"
    model = build("mpnet")
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(folder)  # preflight only loads it
    recipe = tiny_recipe(folder, tiny_csv, tmp_path / "out", prune={"heads": heads, "ffn": {"fraction": 0.5}})
    if refused:
        with pytest.raises(ModelError) as err:
            check_shapes(recipe_from_dict(recipe))
        assert str(err.value) == MPNET_LINE
    else:
        assert check_shapes(recipe_from_dict(recipe)) == []


def test_uniform_head_selection_takes_the_same_heads_from_every_layer():
    import numpy as np

    from edgecompress.prune.config import HeadPruningConfig
    from edgecompress.prune.select import select_heads

    scores = [np.array([0.9, 0.1, 0.5, 0.4]), np.array([0.8, 0.3, 0.1, 0.7])]  # sums 1.7 0.4 0.6 1.1
    cfg = HeadPruningConfig(mode="structured", count=2, scope="uniform")
    assert select_heads(scores, cfg) == {0: [1, 2], 1: [1, 2]}
    assert select_heads(scores, cfg, n_remove=1) == {0: [1], 1: [1]}


def test_deberta_pruned_checkpoint_cannot_use_pruned_heads_and_reloads_through_its_own_record(tmp_path):
    """transformers raises NotImplementedError on a DeBERTa config with pruned_heads: edgecompress_heads
    rebuilds the shapes instead, and the per-head position projections lose the same rows."""
    model = build("deberta-v2")
    inputs = batch("deberta-v2")
    heads = {1: [0, 3], 3: [2]}
    expected = masked_logits(model, "deberta-v2", inputs, heads, {})
    surgery.remove_heads(model, heads)
    attn = model.deberta.encoder.layer[1].attention.self
    assert (
        attn.pos_key_proj.out_features
        == attn.pos_query_proj.out_features
        == attn.query_proj.out_features
        == 16
    )
    assert torch.allclose(logits(model, inputs), expected, atol=1e-5)
    model.save_pretrained(tmp_path, safe_serialization=True)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not saved.get("pruned_heads") and saved["edgecompress_heads"][1] == [1, 2]
    back = load_saved_classifier(tmp_path)
    assert layers.head_counts(back) == [4, 2, 4, 3]
    assert torch.allclose(logits(back, inputs), expected, atol=1e-5)


def test_modernbert_init_layers_must_match_the_layer_roles():
    teacher = build("modernbert")  # roles: first global, local, global, local
    with pytest.raises(ModelError) as err:
        build_student(teacher, StudentConfig(num_layers=2, init_layers=[1, 3]), LABELS)
    assert str(err.value) == (
        "student.init_layers: model type 'modernbert': ModernBERT student layer 0 is a first global (no attention "
        "norm) attention layer but teacher layer 1 is local (global every 2 layers, layer 0 has no attention "
        "norm); the distill stage copies a layer only into one of its role: choose init_layers with matching roles"
    )
    # without init_layers, the evenly spread choice moves to the nearest teacher layer of the same role
    student, info = build_student(teacher, StudentConfig(num_layers=3), LABELS)
    assert info["init_layers"] == [0, 1, 2]  # spread [0, 2, 3] -> student roles first global, local, global
    assert torch.isfinite(logits(student, batch("modernbert"))).all()


def test_modernbert_glu_units_are_both_halves_of_wi(tmp_path):
    model = build("modernbert")
    inputs = batch("modernbert")
    expected = masked_logits(model, "modernbert", inputs, {}, {2: [0, 63]})
    surgery.remove_units(model, {2: [0, 63]})
    wi = model.model.layers[2].mlp.Wi
    assert wi.out_features == 124 and model.model.layers[2].mlp.Wo.in_features == 62
    assert torch.allclose(logits(model, inputs), expected, atol=1e-5)
    assert layers.magnitude_importance(model)[1][2].shape == (62,)


def test_modernbert_role_mismatch_fails_preflight_in_one_line(tmp_path, tiny_teacher, tiny_csv):
    from transformers import AutoTokenizer

    folder = tmp_path / "modernbert"
    build("modernbert").save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(folder)  # preflight only loads it
    student = {"num_layers": 2, "init_layers": [0, 2]}
    recipe = tiny_recipe(folder, tiny_csv, tmp_path / "out", student=student)
    with pytest.raises(ModelError) as err:
        check_shapes(recipe_from_dict(recipe))
    line = str(err.value)
    assert "\n" not in line and line.startswith(
        "student.init_layers: model type 'modernbert': ModernBERT student"
    )
    assert "student layer 1 is a local attention layer but teacher layer 2 is global" in line
    assert "the distill stage" in line


def test_modernbert_teacher_sentence_vector_is_after_final_norm():
    """hidden_states[-1] is built before final_norm: the cached [CLS] target is what the head reads."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from edgecompress.distill.stage import teacher_outputs

    teacher = build("modernbert")
    inputs = batch("modernbert")

    class Split:  # what teacher_outputs reads of an EncodedSplit
        def __len__(self):
            return 3

        def batches_in_order(self, size):
            return [(slice(0, 3), dict(inputs))]

    accelerator = SimpleNamespace(device=torch.device("cpu"), autocast=nullcontext)
    cls = teacher_outputs(teacher, Split(), accelerator, with_cls=True)["teacher_cls"]
    with torch.no_grad():
        out = teacher.model(**inputs, output_hidden_states=True)
    assert not torch.allclose(out.hidden_states[-1][:, 0], out.last_hidden_state[:, 0])
    assert torch.allclose(torch.from_numpy(cls).float(), out.last_hidden_state[:, 0], atol=1e-2)


def test_uniform_removal_of_every_head_is_refused_from_the_shapes():
    from edgecompress.prune.config import PruneConfig
    from edgecompress.prune.select import check_targets

    cfg = PruneConfig(heads={"mode": "structured", "count": 4, "scope": "uniform", "allow_layer_drop": True})
    with pytest.raises(RecipeError, match="uniform removal from every layer would remove them all"):
        check_targets(cfg, [4, 4], [64, 64])
    with pytest.raises(RecipeError, match="uniform head pruning needs the same heads in every layer"):
        check_targets(
            PruneConfig(heads={"mode": "structured", "count": 1, "scope": "uniform"}), [4, 3], [8, 8]
        )
