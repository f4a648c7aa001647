"""Training that learns the right targets, and caches that notice a change (the "trust" issue, findings 4-7).

Each test names the finding it covers; each failed on the code before its fix (see the commit messages).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import make_tiny_bert, stage_context, synthetic_rows, write_csv

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.distill import stage as distill_stage
from edgecompress.distill.config import AugmentationConfig, DistillConfig, StudentConfig
from edgecompress.distill.memory import input_keys
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.modeling.student import build_student
from edgecompress.training.accel import make_accelerator
from edgecompress.training.config import TrainingConfig

QUIET = {"log": lambda _m: None}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """60 labelled rows and a random 2-layer teacher with a head (no fine-tuning needed to read outputs)."""
    root = tmp_path_factory.mktemp("small")
    csv = write_csv(root / "d.csv", synthetic_rows(60))
    data = prepare(DataConfig(source="csv", path=str(csv), group_column="movie", max_length=16), 0)
    make_tiny_bert(root / "teacher", layers=2, with_head=True)
    src = resolve(str(root / "teacher"), "teacher.model")
    teacher, _ = load_classifier(src, data.labels)
    return data, teacher.eval(), load_tokenizer(src)


# --- 4. the teacher memory is keyed by what the teacher read ------------------------------------------


class TeacherTargets:
    """What the losses were handed as the teacher's logits, beside the inputs of that step."""

    def __init__(self, monkeypatch, student):
        self.inputs, self.logits = [], []
        targets = self

        class Recording(distill_stage.DistillationLoss):
            def forward(self, student_out, teacher_out, *args, **kwargs):
                targets.logits.append(teacher_out.logits.detach().float().clone())
                return super().forward(student_out, teacher_out, *args, **kwargs)

        def capture(module, _args, kwargs):
            if module.training:  # a training step (validation forwards run in eval mode)
                keys = ("input_ids", "attention_mask", "token_type_ids")
                self.inputs.append({k: kwargs[k].clone() for k in keys if k in kwargs})

        monkeypatch.setattr(distill_stage, "DistillationLoss", Recording)
        student.register_forward_pre_hook(capture, with_kwargs=True)

    def worst_error(self, teacher) -> float:
        """Largest difference between the logits the losses got and the teacher's on the same inputs."""
        assert self.inputs and len(self.inputs) == len(self.logits)
        with torch.no_grad():
            return max(
                float((teacher(**inputs).logits - got).abs().max())
                for inputs, got in zip(self.inputs, self.logits, strict=True)
            )


def _rounds(small, monkeypatch, augmentation):
    """Two distillations sharing one teacher memory, as the prune stage's recovery rounds do: round 1 for two
    epochs from seed 1, round 2 for one epoch from seed 2. Returns the spy and both records."""
    data, teacher, tok = small
    student, _ = build_student(teacher, StudentConfig(num_layers=1), data.labels)
    spy = TeacherTargets(monkeypatch, student)
    acc = make_accelerator("cpu", "no", 0)
    ctx = stage_context(data, accelerator=acc)
    records = []
    pair = distill_stage.DistillPair(student, teacher, tok)
    for seed, epochs in ((1, 2), (2, 1)):
        cfg = DistillConfig(
            training=TrainingConfig(epochs=epochs, batch_size=16, learning_rate=1e-3, evals_per_epoch=1),
            augmentation=augmentation,
            teacher_memory_mb=64,
        )
        records.append(distill_stage.distill(cfg, pair, ctx.with_seed(seed)))
        pair = distill_stage.DistillPair(student, teacher, tok, teacher_memory=pair.teacher_memory)
    return spy, records


def test_memory_never_recalls_the_outputs_of_other_texts(small, monkeypatch):
    """Finding 4: with augmentation, round 2's copies are other texts at the same positions; the losses must
    get the teacher's outputs for the texts of round 2 (recalled by position they were round 1's)."""
    spy, (first, second) = _rounds(small, monkeypatch, AugmentationConfig(copies=1, mask_prob=0.3))
    assert spy.worst_error(small[1]) < 1e-5
    assert first["teacher_memory"]["batches_from_memory"] > 0  # epoch 2 of round 1 recalled its own texts
    # round 2 read its new copies with the teacher
    assert (
        second["teacher_memory"]["batches_read_by_the_teacher"]
        > first["teacher_memory"]["batches_read_by_the_teacher"]
    )


def test_memory_still_saves_the_teacher_forward_without_augmentation(small, monkeypatch):
    """Finding 4, the speed-up kept: the same texts in later epochs and rounds come from memory."""
    spy, (first, second) = _rounds(small, monkeypatch, None)
    per_epoch = math.ceil(len(small[0].splits["train"]) / 16)
    assert first["teacher_memory"]["batches_read_by_the_teacher"] == per_epoch  # epoch 1 only
    assert first["teacher_memory"]["batches_from_memory"] == per_epoch  # epoch 2
    assert second["teacher_memory"]["batches_read_by_the_teacher"] == per_epoch  # nothing new in round 2
    assert second["teacher_memory"]["batches_from_memory"] == 2 * per_epoch
    assert spy.worst_error(small[1]) < 1e-5


def test_memory_keys_are_the_real_tokens():
    """Padding does not change a key; another token or token type does."""
    ids = torch.tensor([[4, 9, 5, 0, 0], [4, 9, 5, 7, 0], [4, 9, 5, 0, 0]])
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    types[2, 2] = 1
    keys = input_keys({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    narrow = input_keys(
        {"input_ids": ids[:1, :3], "attention_mask": mask[:1, :3], "token_type_ids": types[:1, :3]}
    )
    assert keys[0] == narrow[0] and len({keys[0], keys[1], keys[2]}) == 3


# --- 5. the prune stage's teacher reads its own tokens ----------------------------------------------------


def _permuted_tokenizer(folder, teacher_dir):
    """The teacher's word-pieces in another order: the same texts, other token ids."""
    from transformers import AutoTokenizer, BertTokenizerFast

    vocab = list(AutoTokenizer.from_pretrained(teacher_dir).get_vocab())
    specials = [t for t in vocab if t.startswith("[")]
    words = sorted((t for t in vocab if not t.startswith("[")), reverse=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(specials + words) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    return tok


def _student_with_own_tokenizer(kind, teacher, data, folder, teacher_dir):
    from transformers import BertConfig, BertForSequenceClassification

    from edgecompress.modeling.classic import build_classic

    tok = _permuted_tokenizer(folder, teacher_dir)
    if kind == "textcnn":
        cfg = StudentConfig(architecture="textcnn", cnn={"filters": 8})
        student, _ = build_classic(cfg, teacher, data.labels, tok.pad_token_id)
    else:
        config = BertConfig(
            vocab_size=len(tok.get_vocab()),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
            num_labels=2,
            id2label=dict(enumerate(data.labels)),
            label2id={lbl: i for i, lbl in enumerate(data.labels)},
        )
        student = BertForSequenceClassification(config)
    student.save_pretrained(folder, safe_serialization=True)


@pytest.mark.parametrize("kind", ["transformer", "textcnn"])
def test_pruning_recovery_gives_the_teacher_its_own_token_ids(kind, small, tmp_path, monkeypatch):
    """Finding 5: a student with a tokenizer of its own (``student.model``) is saved with it; the prune stage
    reloaded that as the teacher's tokenizer, so during recovery the teacher read the student's ids."""
    from edgecompress.distill.config import LossWeights
    from edgecompress.prune import stage as prune_stage
    from edgecompress.prune.config import PruneConfig, PruneStageConfig

    data, teacher, teacher_tok = small
    teacher_dir = tmp_path / "teacher"
    teacher.save_pretrained(teacher_dir, safe_serialization=True)
    teacher_tok.save_pretrained(teacher_dir)
    _student_with_own_tokenizer(kind, teacher, data, tmp_path / "student", teacher_dir)
    texts, _ = data.texts("train")
    teacher_rows = {tuple(ids) for ids in teacher_tok(texts, truncation=True, max_length=16)["input_ids"]}
    read = []

    def recording(cfg, pair, *args, **kwargs):
        def capture(_module, _args, kw):
            for ids, mask in zip(kw["input_ids"], kw["attention_mask"], strict=True):
                read.append(tuple(ids[: int(mask.sum())].tolist()))

        pair.teacher.register_forward_pre_hook(capture, with_kwargs=True)
        return real_distill(cfg, pair, *args, **kwargs)

    real_distill = prune_stage.distill
    monkeypatch.setattr(prune_stage, "distill", recording)
    recovery = {"max_steps": 2, "batch_size": 16, "evals_per_epoch": 1}
    if kind == "textcnn":  # a classic student: only its vocabulary is pruned, no attention transfer
        prune = PruneConfig(vocab={"enabled": True}, recovery=recovery)
        distill = DistillConfig(weights=LossWeights(attention=0))
    else:
        prune = PruneConfig(
            heads={"mode": "structured", "fraction": 0.5}, importance_batches=1, recovery=recovery
        )
        distill = DistillConfig()
    inputs = prune_stage.PruneInputs(tmp_path / "student", teacher_dir, None)
    ctx = stage_context(data, accelerator=make_accelerator("cpu", "no", 0))
    (tmp_path / "out").mkdir()
    prune_stage.run(PruneStageConfig(prune=prune, distill=distill), inputs, ctx, tmp_path / "out")
    assert read and set(read) <= teacher_rows


# --- 6. a head named LABEL_0, LABEL_1 is not a head for the data's labels; checkpoints load strictly ------


def _placeholder_teacher(folder):
    """A teacher with a 2-row head named only LABEL_0 / LABEL_1 (like textattack's SST-2 BERT)."""
    return make_tiny_bert(folder, labels=["LABEL_0", "LABEL_1"], layers=2, with_head=True).eval()


def _teacher_stage(small, tmp_path, **teacher):
    from edgecompress.teacher import stage as teacher_stage
    from edgecompress.teacher.config import TeacherConfig

    data = small[0]
    cfg = TeacherConfig(
        model=str(tmp_path / "hub_like"), training={"max_steps": 1, "batch_size": 16}, **teacher
    )
    logged = []
    ctx = replace(stage_context(data, accelerator=make_accelerator("cpu", "no", 0)), log=logged.append)
    out = tmp_path / "teacher_out"
    out.mkdir(exist_ok=True)
    return teacher_stage.run(cfg, None, ctx, out), logged, out


def test_head_label_order_ignores_placeholder_names_unless_the_recipe_names_the_rows():
    from transformers import BertConfig

    from edgecompress.errors import RecipeError
    from edgecompress.modeling.loading import head_label_order

    labels = ["negative", "positive"]
    cfg = BertConfig(num_labels=2, architectures=["BertForSequenceClassification"])
    cfg.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    assert head_label_order(cfg, labels) is None
    assert head_label_order(cfg, labels, ["Positive", "negative"]) == [1, 0]
    with pytest.raises(
        RecipeError, match=r"^teacher.head_labels: 3 names, but the checkpoint's head has 2 rows$"
    ):
        head_label_order(cfg, labels, ["negative", "positive", "neutral"])
    with pytest.raises(
        RecipeError,
        match="^teacher.head_labels: names good, bad, but the data's labels are negative, positive$",
    ):
        head_label_order(cfg, labels, ["good", "bad"])


def test_never_finetune_a_placeholder_head_is_refused_in_one_line(small, tmp_path):
    from edgecompress.errors import RecipeError

    _placeholder_teacher(tmp_path / "hub_like")
    with pytest.raises(RecipeError) as err:
        _teacher_stage(small, tmp_path, finetune="never")
    assert "\n" not in str(err.value)
    assert str(err.value) == (
        f"teacher.finetune: 'never', but '{tmp_path / 'hub_like'}' names its head rows only LABEL_0, LABEL_1, "
        "which says nothing about which of negative, positive each row is; set teacher.head_labels to the label "
        "of each row, in row order"
    )


def test_auto_finetunes_a_placeholder_head_with_one_warning(small, tmp_path):
    _placeholder_teacher(tmp_path / "hub_like")
    record, logged, _ = _teacher_stage(small, tmp_path)
    assert record["finetuned"] is True and record["had_matching_head"] is False
    assert len(logged) == 1 and logged[0].startswith(
        f"warning: teacher.head_labels: '{tmp_path / 'hub_like'}' names its head rows only LABEL_0, LABEL_1"
    )


def test_head_labels_say_which_row_is_which_label(small, tmp_path):
    """The recipe names the rows (row 0 is positive here): the head is kept, re-ordered to the sorted labels."""
    from edgecompress.modeling.loading import load_saved_classifier

    original = _placeholder_teacher(tmp_path / "hub_like")
    record, logged, out = _teacher_stage(
        small, tmp_path, finetune="never", head_labels=["positive", "negative"]
    )
    assert record["finetuned"] is False and record["had_matching_head"] is True and logged == []
    ids = torch.tensor([[2, 5, 9, 3]])
    with torch.no_grad():
        before, after = original(input_ids=ids).logits, load_saved_classifier(out)(input_ids=ids).logits
    assert torch.allclose(after, before.flip(-1))  # our label 0 (negative) was the checkpoint's row 1


def test_the_hub_recipe_names_its_head_rows():
    from pathlib import Path

    from edgecompress.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "bert_base_sst2_hub.yaml")
    assert recipe.teacher.head_labels == [
        "negative",
        "positive",
    ]  # textattack: LABEL_0 negative, LABEL_1 positive


def _tamper(folder, add: str | None = None, drop: str | None = None):
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    if add:
        state[add] = torch.zeros(3)
    if drop:
        del state[drop]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("layout", ["plain", "unequal_ffn", "textcnn"])
def test_a_checkpoint_with_foreign_or_missing_weights_is_refused(layout, small, tmp_path):
    from edgecompress.errors import ModelError
    from edgecompress.modeling.classic import build_classic
    from edgecompress.modeling.loading import load_saved_classifier
    from edgecompress.prune import surgery

    data, teacher, _ = small
    folder = tmp_path / "m"
    if layout == "textcnn":
        model, _ = build_classic(
            StudentConfig(architecture="textcnn", cnn={"filters": 4}), teacher, data.labels, 0
        )
        drop = "classifier.bias"
    else:
        model = make_tiny_bert(tmp_path / "src", layers=2, with_head=True)
        if layout == "unequal_ffn":
            surgery.remove_units(model, {0: [1, 2]})
        drop = "classifier.weight"
    model.save_pretrained(folder, safe_serialization=True)
    load_saved_classifier(folder)  # as saved: loads
    _tamper(folder, add="bert.encoder.extra.weight")
    with pytest.raises(ModelError) as err:
        load_saved_classifier(folder)
    assert str(err.value) == (
        f"{folder}: the weights do not match config.json (unexpected keys bert.encoder.extra.weight); re-save "
        "the model, or delete the folder to rebuild it"
    )
    _tamper(folder, add=None, drop=drop)
    with pytest.raises(
        ModelError, match=f"unexpected keys bert.encoder.extra.weight; missing keys {drop}\\)"
    ):
        load_saved_classifier(folder)


# --- 7. stage keys hold what the stage reads and what `auto` means here -----------------------------------


def _quick_recipe(teacher_dir, data_path, out, **sections):
    """The tiny recipe with one-step trainings: keys and reuse are what these tests look at."""
    from conftest import tiny_recipe

    from edgecompress.recipe import recipe_from_dict

    one_step = {"max_steps": 1, "batch_size": 16, "evals_per_epoch": 1}
    sections = {
        "teacher": {"model": str(teacher_dir), "training": one_step},
        "distill": {"training": one_step},
        "quantization": {"variants": [{"method": "int8_dynamic", "name": "int8-dynamic"}]},
        **sections,
    }
    return recipe_from_dict(tiny_recipe(teacher_dir, data_path, out, **sections))


def _reused(recipe, stage: str) -> bool:
    """Whether a new run of ``recipe`` reuses its data or teacher stage."""
    from edgecompress.pipeline import Pipeline

    with Pipeline(recipe, **QUIET) as pipe:
        if stage == "data":
            pipe.data()
            return pipe.results["data"].reused
        return pipe.teacher().reused


def test_a_data_file_changed_in_place_reruns_the_data_stage(tiny_teacher, tmp_path):
    csv = write_csv(tmp_path / "reviews.csv", synthetic_rows(80))
    recipe = _quick_recipe(tiny_teacher, csv, tmp_path / "run")
    assert not _reused(recipe, "data") and _reused(recipe, "data")
    rows = synthetic_rows(80)
    rows[0]["label"] = "negative"  # one label corrected, same path
    write_csv(csv, rows)
    assert not _reused(recipe, "data")


def test_a_data_folder_changed_in_place_reruns_the_data_stage(tiny_teacher, tmp_path):
    corpus = tmp_path / "corpus"
    for i, row in enumerate(synthetic_rows(60)):
        (corpus / row["label"]).mkdir(parents=True, exist_ok=True)
        (corpus / row["label"] / f"{i:03d}.txt").write_text(row["text"])
    recipe = _quick_recipe(
        tiny_teacher,
        corpus,
        tmp_path / "run",
        data={"source": "folder", "path": str(corpus), "max_length": 16},
    )
    assert not _reused(recipe, "data") and _reused(recipe, "data")
    (corpus / "positive" / "000.txt").write_text("a brilliant and moving film")
    assert not _reused(recipe, "data")


def test_a_teacher_folder_changed_in_place_reruns_the_teacher(tiny_csv, tmp_path):
    make_tiny_bert(tmp_path / "teacher", layers=2)
    recipe = _quick_recipe(tmp_path / "teacher", tiny_csv, tmp_path / "run")
    assert not _reused(recipe, "teacher") and _reused(recipe, "teacher")
    make_tiny_bert(tmp_path / "teacher", layers=2, seed=1)  # other weights, same folder
    assert not _reused(recipe, "teacher")


def test_training_keys_hold_the_precision_auto_resolved_to(tiny_teacher, tiny_csv, tmp_path, monkeypatch):
    """A run folder copied to a machine where `auto` trains in bf16 must not reuse stages trained in fp32."""
    from edgecompress import machine
    from edgecompress.training.accel import CPU_BF16_FLAGS

    recipe = _quick_recipe(tiny_teacher, tiny_csv, tmp_path / "run", mixed_precision="auto")
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2"})
    assert not _reused(recipe, "teacher") and _reused(recipe, "teacher")
    # bf16 asked on a CPU without it trains in fp32: the same stage
    assert _reused(recipe.model_copy(update={"mixed_precision": "bf16"}), "teacher")
    monkeypatch.setattr(machine, "cpu_flags", lambda: set(CPU_BF16_FLAGS))
    assert not _reused(recipe, "teacher")


def test_the_quantize_key_holds_the_preset_auto_resolved_to(tiny_teacher, tiny_csv, tmp_path, monkeypatch):
    import json

    from edgecompress import machine
    from edgecompress.pipeline import TEACHER_VARIANT, Pipeline

    recipe = _quick_recipe(tiny_teacher, tiny_csv, tmp_path / "run")
    qcfg = recipe.quantization.variants[0]
    assert qcfg.preset == "auto"
    reused = []
    for preset in ("avx2", "avx2", "avx512_vnni"):  # this CPU, again, then the run folder on another CPU
        monkeypatch.setattr(machine, "isa_preset", lambda p=preset: p)
        with Pipeline(recipe, **QUIET) as pipe:
            pipe.export(TEACHER_VARIANT, pipe.teacher())
            folder = pipe.quantize(TEACHER_VARIANT, qcfg)
            reused.append(pipe.results[f"models/{folder.name}"].reused)
        assert json.loads((folder / "stage.json").read_text())["record"]["preset"] == preset
    assert reused == [False, True, False]


# --- 7. the frontier measures only points built with today's keys; split_seed 0 is a seed -----------------


def test_frontier_uses_sweep_points_and_peers_only_when_their_keys_are_current(
    tiny_teacher, tiny_csv, tmp_path, monkeypatch
):
    """Finding 7: studies/frontier.py took sweep.json / peers.json rows as they were (RESULTS.md's frontier
    mixed sweep artifacts built before the fp16-scale change); each point's chain is now checked."""
    import json

    from edgecompress.errors import EdgeCompressError
    from edgecompress.pipeline import Pipeline
    from edgecompress.quantize import stage as quantize_stage
    from edgecompress.studies import frontier
    from edgecompress.studies.peers import peer_model
    from edgecompress.studies.sweep import SweepPoint, build_point, final_variant_config

    prune = {"heads": {"mode": "structured", "fraction": 0.5}, "importance_batches": 1, "recovery": None}
    recipe = _quick_recipe(tiny_teacher, tiny_csv, tmp_path / "run", prune=prune)
    with Pipeline(recipe, **QUIET) as pipe:
        built = build_point(pipe, SweepPoint(2, 0.5), final_variant_config(pipe))["quantized"]
        peer = peer_model(pipe, "1")
    run = tmp_path / "run"
    sweep_rows = [
        {"variant": built.name, "layers": 2, "fraction": 0.5},
        {"variant": "sweep-L1-p25-int8-dynamic", "layers": 1, "fraction": 0.25},  # never built here
    ]
    (run / "sweep" / "sweep.json").write_text(json.dumps({"rows": sweep_rows}))
    (run / "peers").mkdir(exist_ok=True)
    peer_rows = [{"peer": "1", "variant": peer.name}, {"peer": "4", "variant": "pruned-int8-dynamic"}]
    (run / "peers" / "peers.json").write_text(json.dumps({"rows": peer_rows}))

    def points():
        with Pipeline(recipe, reuse_only=True, **QUIET) as pipe:
            return {p.variant: p.stale for p in frontier.sweep_points(pipe) + frontier.peer_points(pipe)}

    assert points() == {
        "sweep-L2-p50-int8-dynamic": None,
        "sweep-L1-p25-int8-dynamic": "sweep/student-L1 differs",
        "teacher-int8-dynamic": None,
    }
    assert not (run / "sweep" / "student-L1").exists()  # checking builds nothing
    monkeypatch.setattr(quantize_stage, "STAGE_VERSION", quantize_stage.STAGE_VERSION + 1)  # a code change
    stale = points()
    assert stale["sweep-L2-p50-int8-dynamic"] == "models/sweep-L2-p50-int8-dynamic differs"
    assert stale["teacher-int8-dynamic"] == "models/teacher-int8-dynamic differs"
    with Pipeline(recipe, reuse_only=True, **QUIET) as pipe:
        found = frontier.sweep_points(pipe) + frontier.peer_points(pipe)
    with pytest.raises(EdgeCompressError) as err:
        frontier.current_points(found, allow_stale=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith(
        "frontier: 3 points were built from another recipe or code than this run: sweep-L2-p50-int8-dynamic "
        "(models/sweep-L2-p50-int8-dynamic differs); sweep-L1-p25-int8-dynamic (sweep/student-L1 differs); "
        "teacher-int8-dynamic (models/teacher-int8-dynamic differs); "
    )
    assert {p.kind for p in frontier.current_points(found, allow_stale=True)} == {
        "sweep (stale)",
        "peer (stale)",
    }


def test_a_results_file_without_rows_is_one_line(tmp_path):
    from edgecompress.errors import EdgeCompressError
    from edgecompress.studies.frontier import result_rows

    path = tmp_path / "sweep.json"
    path.write_text('{"rows": [{"variant": "a"}]}')
    with pytest.raises(EdgeCompressError, match=rf"^{path}: row 0 has no 'layers'$"):
        result_rows(path, ("variant", "layers"))
    path.write_text("[1, 2]")
    with pytest.raises(EdgeCompressError, match="not a results file"):
        result_rows(path, ("variant",))


def test_other_seeds_keep_split_seed_zero(tiny_teacher, tiny_csv, tmp_path):
    from edgecompress.studies.frontier import seed_recipe

    recipe = _quick_recipe(tiny_teacher, tiny_csv, tmp_path / "run", seed=42)
    pinned = recipe.model_copy(update={"data": recipe.data.model_copy(update={"split_seed": 0})})
    assert seed_recipe(pinned, 7, tmp_path / "run").data.split_seed == 0
    assert seed_recipe(recipe, 7, tmp_path / "run").data.split_seed == 42  # unpinned: the recipe's seed
