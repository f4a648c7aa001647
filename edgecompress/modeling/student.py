"""Build the student: the teacher's architecture with fewer layers, copied from chosen teacher layers."""

from __future__ import annotations

import copy
import re

import numpy as np
import torch

from edgecompress.distill.config import StudentConfig
from edgecompress.errors import ModelError, RecipeError
from edgecompress.modeling.encoders import adapter_for, role_mismatch
from edgecompress.modeling.layers import layer_list_name
from edgecompress.modeling.loading import load_classifier, resolve


def evenly_spread(n_teacher: int, n_student: int) -> list[int]:
    """Teacher layers for a student of ``n_student`` layers: first and last included, the rest evenly between."""
    if n_student == 1:
        return [n_teacher - 1]
    return [int(x) for x in np.round(np.linspace(0, n_teacher - 1, n_student))]


def copy_from_teacher(student: torch.nn.Module, teacher: torch.nn.Module, init_layers: list[int]) -> None:
    """Copy every student tensor from the teacher; student layer i takes teacher layer init_layers[i]."""
    prefix = re.escape(layer_list_name(student))
    pattern = re.compile(rf"^({prefix})\.(\d+)\.")
    t_state = teacher.state_dict()
    new_state = {}
    for key, value in student.state_dict().items():
        m = pattern.match(key)
        t_key = pattern.sub(lambda m: f"{m.group(1)}.{init_layers[int(m.group(2))]}.", key) if m else key
        if t_key not in t_state or t_state[t_key].shape != value.shape:
            raise ModelError(f"cannot initialise student tensor '{key}' from the teacher", where="student")
        new_state[key] = t_state[t_key].clone()
    student.load_state_dict(new_state)


SHAPE_FIELDS = {"hidden_size": "hidden", "num_attention_heads": "heads", "intermediate_size": "ffn"}


def student_config(teacher_config, cfg: StudentConfig):
    """The built student's transformers config, checked against the teacher's: needs no weights, so the
    run's preflight calls it before any training.

    Returns ``(config, init_layers)``; ``init_layers`` is None when the student is initialised at random.
    """
    adapter = adapter_for(teacher_config, "distill")
    n_teacher = adapter.num_layers(teacher_config)
    if cfg.num_layers > n_teacher and not cfg.changes_width:
        raise RecipeError(
            f"{cfg.num_layers} layers asked, the teacher has only {n_teacher}", where="student.num_layers"
        )
    s_cfg = copy.deepcopy(teacher_config)
    adapter.apply_overrides(s_cfg)
    adapter.set_shape(s_cfg, "layers", cfg.num_layers)
    for (
        field,
        key,
    ) in SHAPE_FIELDS.items():  # under the family's own keys (DistilBERT: dim, n_heads, hidden_dim)
        if getattr(cfg, field) is not None:
            adapter.set_shape(s_cfg, key, getattr(cfg, field))
    hidden, heads = adapter.hidden_size(s_cfg), adapter.num_heads(s_cfg)
    if hidden % heads:
        raise RecipeError(
            f"hidden_size {hidden} is not divisible by {heads} heads", where="student.num_attention_heads"
        )
    if cfg.changes_width and cfg.width_init == "random":
        return s_cfg, None
    if cfg.changes_width:
        _check_narrow(teacher_config, s_cfg)
    init = cfg.init_layers or matching_roles(
        adapter.layer_roles(teacher_config),
        adapter.layer_roles(s_cfg),
        evenly_spread(n_teacher, cfg.num_layers),
    )
    bad = [i for i in init if i >= n_teacher]
    if bad:
        raise RecipeError(
            f"teacher layer {bad[0]} does not exist (the teacher has {n_teacher})",
            where="student.init_layers",
        )
    _check_roles(adapter, teacher_config, s_cfg, init)
    return s_cfg, init


def matching_roles(teacher_roles: list[str], student_roles: list[str], spread: list[int]) -> list[int]:
    """``spread``, each entry moved to the nearest teacher layer whose role is the student layer's (ModernBERT:
    a student layer does what its new index says); unchanged where every layer has the same role."""
    out = []
    for i, t in enumerate(spread):
        same = [j for j, role in enumerate(teacher_roles) if role == student_roles[i]]
        out.append(min(same, key=lambda j: (abs(j - t), j)) if same else t)
    return out


def _check_roles(adapter, teacher_config, s_cfg, init: list[int]) -> None:
    t_roles, s_roles = adapter.layer_roles(teacher_config), adapter.layer_roles(s_cfg)
    for i, t in enumerate(init):
        if s_roles[i] != t_roles[t]:
            every = getattr(teacher_config, adapter.layer_every)
            raise ModelError(role_mismatch(i, s_roles[i], t, t_roles[t], every), where="student.init_layers")


def _check_narrow(teacher_config, s_cfg) -> None:
    """What ``width_init: teacher`` needs: the teacher's head size, and no width above the teacher's."""
    a = adapter_for(teacher_config, "distill")
    head = a.hidden_size(teacher_config) // a.num_heads(teacher_config)
    if a.hidden_size(s_cfg) // a.num_heads(s_cfg) != head:
        raise RecipeError(
            f"width_init teacher keeps the teacher's head size {head}: num_attention_heads must be hidden_size / "
            f"{head} = {a.hidden_size(s_cfg) / head:g}",
            where="student.num_attention_heads",
        )
    if a.projects_embeddings(teacher_config) and not a.projects_embeddings(s_cfg):
        raise RecipeError(
            f"hidden_size {a.hidden_size(s_cfg)} equals the teacher's embedding_size, so the student would have no "
            "embedding projection to carry the teacher's through its principal directions; choose another "
            "hidden_size or width_init: random",
            where="student.hidden_size",
        )
    for field, width in (("hidden_size", a.hidden_size), ("intermediate_size", a.ffn_size)):
        if width(s_cfg) > width(teacher_config):
            raise RecipeError(
                f"{width(s_cfg)} is wider than the teacher's {width(teacher_config)}",
                where=f"student.{field}",
            )


def build_student(
    teacher: torch.nn.Module, cfg: StudentConfig, labels: list[str], sample_batches: list[dict] | None = None
) -> tuple[torch.nn.Module, dict]:
    """The student model and a description of how it was made (for the run's records).

    ``sample_batches`` (training text) are needed for ``width_init: teacher``: the principal directions of
    the teacher's hidden states come from them."""
    if cfg.model is not None:
        model, _ = load_classifier(resolve(cfg.model, "student.model"), labels)
        return model, {"built_from": cfg.model}
    from transformers import AutoModelForSequenceClassification

    s_cfg, init = student_config(teacher.config, cfg)
    s_cfg._attn_implementation = "eager"
    student = AutoModelForSequenceClassification.from_config(s_cfg, attn_implementation="eager")
    if init is None:
        return student, {
            "built_from": "teacher config",
            "init": "random (other width)",
            "layers": cfg.num_layers,
        }
    if cfg.changes_width:
        from edgecompress.modeling.narrow import narrow_from_teacher, principal_directions

        width = adapter_for(s_cfg, "distill").hidden_size(s_cfg)
        basis, share = principal_directions(teacher, sample_batches or [], width)
        narrow_from_teacher(student, teacher, init, basis)
        return student, {
            "built_from": "teacher",
            "init": "teacher through its principal directions",
            "init_layers": init,
            "layers": cfg.num_layers,
            "hidden_size": width,
            "second_moment_kept": round(share, 4),
        }
    copy_from_teacher(student, teacher, init)
    return student, {"built_from": "teacher", "init_layers": init, "layers": cfg.num_layers}
