"""4-bit weight-only through Intel Neural Compressor: bit-exact unpacking, MatMulNBits parity, the variant
artifact, autotune's record, and clear errors for impossible settings."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest import export_model, make_tiny_bert, train_on_labels

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.errors import RecipeError
from edgecompress.export.artifact import onnx_size_mb, write_manifest
from edgecompress.export.config import ExportConfig
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.predict import predict
from edgecompress.quantize import QuantContext, inc, quantize
from edgecompress.quantize.config import WeightOnlyConfig
from edgecompress.quantize.nbits import BlockQuantized, matmul_nbits, pack_blocks, unpack_inc_linear
from edgecompress.recipe import recipe_from_dict


def _inc_linear(algorithm_cfg: dict, in_features=64, out_features=24, seed=0):
    """One nn.Linear quantized by INC's RTN; returns (INC's module, the fp32 weight)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(in_features, out_features))
    with torch.no_grad():
        model[0].weight.mul_(3)  # spread values so every 4-bit code is used
    weight = model[0].weight.detach().clone()
    incq = inc.import_inc()
    with inc.quiet_inc():
        q = incq.convert(incq.prepare(model, incq.RTNConfig(use_layer_wise=False, **algorithm_cfg)))
    return q[0], weight


@pytest.mark.parametrize(
    "settings",
    [
        {"bits": 4, "group_size": 32, "use_sym": True},
        {"bits": 4, "group_size": 16, "use_sym": False},
        {"bits": 8, "group_size": 32, "use_sym": True},
    ],
    ids=["int4-sym", "int4-asym", "int8-sym"],
)
def test_unpacking_inc_is_bit_exact(settings):
    module, weight = _inc_linear(settings)
    layer, bias = unpack_inc_linear(module)
    ref = module.unpack()  # INC's own unpacking
    np.testing.assert_array_equal(layer.q, ref["int_weight"].numpy())
    np.testing.assert_array_equal(layer.zero_points, ref["zp"].numpy())
    np.testing.assert_array_equal(layer.scales, ref["scales"].float().numpy())
    assert layer.q.max() < 2 ** settings["bits"] and len(np.unique(layer.q)) > 2 ** settings["bits"] // 2
    assert layer.symmetric == settings["use_sym"]
    # INC's own dequantization (fp16 arithmetic) vs ONNX Runtime's (float32): equal up to fp16 rounding
    np.testing.assert_allclose(layer.dequantize(), module.recover().float().numpy(), rtol=2e-3, atol=1e-6)
    assert np.abs(layer.dequantize() - weight.numpy()).max() <= layer.scales.max()  # a real quantization
    np.testing.assert_array_equal(bias, module.bias.float().numpy())


@pytest.mark.parametrize("bits, symmetric", [(4, True), (4, False), (8, True)])
def test_matmul_nbits_runs_the_unpacked_values_exactly(bits, symmetric):
    """An identity input through the MatMulNBits node gives back exactly the dequantized weight."""
    import onnxruntime as ort
    from onnx import helper

    module, _ = _inc_linear({"bits": bits, "group_size": 16, "use_sym": symmetric}, in_features=80)
    layer, _ = unpack_inc_linear(module)  # 80 / 16 = 5 blocks: an odd count pads the packed zero points
    n, k = layer.q.shape
    graph = helper.make_graph(
        [],
        "g",
        [helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [None, n])],
    )
    fake = helper.make_node("MatMul", ["A", "W"], ["Y"], name="mm")
    graph.node.append(matmul_nbits(graph, "lin", fake, layer, accuracy_level=0))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"A": np.eye(k, dtype=np.float32)})[0]
    np.testing.assert_allclose(out, layer.dequantize().T, rtol=0, atol=1e-6)
    assert [n.op_type for n in graph.node] == ["MatMulNBits"]
    assert len(graph.initializer) == (2 if symmetric else 3)


def test_pack_blocks_layout():
    values = np.array([[1, 2, 3, 4, 5]], dtype=np.uint8)
    assert pack_blocks(values, 4).tolist() == [[0x21, 0x43, 0x05]]  # even index in the low nibble
    assert pack_blocks(values, 8).tolist() == values.tolist()
    table = BlockQuantized(
        np.full((2, 32), 9, np.uint8), np.ones((2, 2), np.float32), np.full((2, 2), 8, np.uint8), 4, 16
    )
    assert table.symmetric and np.all(table.dequantize() == 1.0)


@pytest.fixture(scope="module")
def exported(tiny_csv, tmp_path_factory):
    teacher = tmp_path_factory.mktemp("woq_teacher")
    make_tiny_bert(teacher, layers=2, hidden=64, heads=4, intermediate=128)
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), max_length=16), 0)
    src = resolve(str(teacher), "teacher.model")
    model, _ = load_classifier(src, data.labels)
    tokenizer = load_tokenizer(src)
    train_on_labels(model, tokenizer, data)  # logits that depend on the text, labels a test can name
    root = tmp_path_factory.mktemp("woq")
    model.save_pretrained(root / "pt")
    tokenizer.save_pretrained(root / "pt")
    export_model(ExportConfig(parity_samples=8), root / "pt", data, root / "fp32", "m-fp32")
    return data, root


def _modules(folder) -> dict:
    from transformers import AutoModelForSequenceClassification

    return dict(AutoModelForSequenceClassification.from_pretrained(folder).named_modules())


def _ctx(data, tmp_path, where="quantization.variants.0"):
    return QuantContext(data, 16, 0, tmp_path / "scratch", where)


def _ops(folder) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(folder / "model.onnx")).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_int4_variant_carries_inc_values_and_agrees(exported, tmp_path):
    data, root = exported
    out = tmp_path / "int4"
    cfg = WeightOnlyConfig(algorithm="rtn", group_size=32, symmetric=False, embeddings="int4")
    info = quantize(cfg, root / "fp32", out, _ctx(data, tmp_path))
    ops = _ops(out)
    assert ops.get("MatMulNBits") == 12 and ops.get("GatherBlockQuantized") == 3
    assert ops.get("Gemm") == 2  # pooler + classifier stay float
    assert info["float_layers"] == ["bert.pooler.dense", "classifier"] and len(info["quantized_layers"]) == 12
    agreement = info["inc_vs_onnx"]
    assert agreement["samples"] == len(data.splits["validation"])
    assert agreement["argmax_agreement"] >= 0.995 and agreement["max_abs_logit_diff"] < 1e-3
    assert onnx_size_mb(out) < 0.4 * onnx_size_mb(root / "fp32")
    # the packed weights really are 4 bits per value, and no MatMul keeps a float weight
    graph = onnx.load(str(out / "model.onnx")).graph
    inits = {t.name: t for t in graph.initializer}
    assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    packed = sum(int(np.prod(t.dims)) for t in graph.initializer if t.name.endswith(".qweight"))
    fp32 = _modules(root / "pt")
    expected = sum(fp32[n].weight.numel() for n in info["quantized_layers"] + info["quantized_embeddings"])
    assert packed * 2 == expected
    write_manifest(out, "int4", {}, info)
    assert [r["label"] for r in predict(out, ["a great film", "a dull plot"])] == ["positive", "negative"]


def test_gptq_with_int8_embeddings(exported, tmp_path):
    data, root = exported
    cfg = WeightOnlyConfig(algorithm="gptq", group_size=16, embeddings="int8", calibration_samples=8)
    info = quantize(cfg, root / "fp32", tmp_path / "gptq", _ctx(data, tmp_path))
    assert info["algorithm"] == "gptq" and info["inc_vs_onnx"]["argmax_agreement"] >= 0.995
    graph = onnx.load(str(tmp_path / "gptq" / "model.onnx")).graph
    gathers = [n for n in graph.node if n.op_type == "GatherBlockQuantized"]
    assert gathers and all(a.i == 8 for n in gathers for a in n.attribute if a.name == "bits")


KEEP_LAYER_1 = [r"bert\.encoder\.layer\.1\."]


def _every_trial_fails(monkeypatch) -> None:
    """INC's tuner sees every quantized model 0.5 below its accuracy, so it runs all trials and keeps the best."""
    from edgecompress.quantize import inc

    real = inc.autotune

    def autotune(model, trials, tolerable_loss, evaluate, **kw):
        return real(
            model, trials, tolerable_loss, lambda m: evaluate(m) - 0.5 * bool(inc.quantized_layers(m)), **kw
        )

    monkeypatch.setattr(inc, "autotune", autotune)


@pytest.mark.parametrize("goal", ["met-by-the-first-trial", "met-by-none"])
def test_autotune_records_trials_and_choice(exported, tmp_path, monkeypatch, goal):
    """Both outcomes made certain: a goal any trial meets (INC stops at the first), and one none meets (INC
    runs every trial, in the configured order, and keeps the first of the most accurate)."""
    data, root = exported
    if goal == "met-by-none":
        _every_trial_fails(monkeypatch)
    cfg = WeightOnlyConfig(
        algorithm="autotune",
        embeddings="fp32",
        autotune={
            "algorithms": ["rtn"],
            "group_sizes": [64, 16],
            "keep_fp32_options": [[], KEEP_LAYER_1],
            "tolerable_loss": 0.99 if goal == "met-by-the-first-trial" else 0.0,
        },
    )
    info = quantize(cfg, root / "fp32", tmp_path / "auto", _ctx(data, tmp_path))
    tune = info["autotune"]
    trials = tune["trials"]
    if goal == "met-by-the-first-trial":
        assert [(t["group_size"], t["keep_fp32"]) for t in trials] == [(64, [])]
        assert tune["chosen"] == 1 and tune["met_goal"] and trials[0]["meets_goal"]
    else:
        assert [(t["group_size"], t["keep_fp32"]) for t in trials] == [
            (64, []),
            (16, []),
            (64, KEEP_LAYER_1),
            (16, KEEP_LAYER_1),
        ]
        assert not tune["met_goal"] and not any(t["meets_goal"] for t in trials)
        best = max(t["accuracy"] for t in trials)
        assert tune["chosen"] == 1 + [t["accuracy"] for t in trials].index(best)
    chosen = trials[tune["chosen"] - 1]
    assert info["group_size"] == chosen["group_size"]
    kept = set(info["float_layers"])
    assert {n.startswith("bert.encoder.layer.1.") for n in kept} == (
        {False, True} if chosen["keep_fp32"] else {False}
    )
    assert _ops(tmp_path / "auto").get("MatMulNBits") == len(info["quantized_layers"])


@pytest.mark.parametrize(
    "variant, expected",
    [
        ({"method": "weight_only", "bits": 3}, "quantization.variants.0.bits: Input should be 4 or 8"),
        ({"method": "weight_only", "group_size": 48}, "quantization.variants.0.group_size: "),
        ({"method": "weight_only", "group_size": 48}, "not a power of two >= 16"),
        ({"method": "weight_only", "keep_fp32": ["("]}, "is not a regular expression"),
        ({"method": "weight_only", "bits": 8, "symmetric": False}, "bits 8 needs symmetric: true"),
        (
            {"method": "weight_only", "algorithm": "autotune", "autotune": {"group_sizes": [100]}},
            "quantization.variants.0.autotune.group_sizes",
        ),
    ],
)
def test_impossible_settings_fail_validation(variant, expected):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({"name": "x", "quantization": {"variants": [variant]}}, source="r.yaml")
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "settings, where, message",
    [
        ({"group_size": 128}, "quantization.variants.2.group_size", "does not divide the width 64"),
        (
            {"algorithm": "autotune", "autotune": {"group_sizes": [32, 256]}},
            "quantization.variants.2.autotune.group_sizes",
            "group size 256 does not divide",
        ),
        ({"keep_fp32": ["decoder"]}, "quantization.variants.2.keep_fp32", "matches no quantizable linear"),
        ({"keep_fp32": ["bert"]}, "quantization.variants.2.keep_fp32", "nothing to quantize"),
    ],
)
def test_settings_the_model_cannot_take_name_the_field(exported, tmp_path, settings, where, message):
    data, root = exported
    cfg = WeightOnlyConfig(embeddings="fp32", **settings)
    with pytest.raises(RecipeError) as err:
        quantize(cfg, root / "fp32", tmp_path / "x", _ctx(data, tmp_path, "quantization.variants.2"))
    assert str(err.value).startswith(f"{where}: ") and message in str(err.value)
    assert not (tmp_path / "x").exists()


def test_autotune_records_what_inc_really_built(exported, tmp_path, monkeypatch):
    """GPTQ trials with a layer meant to stay in float: the record says whether INC built it that way."""
    _every_trial_fails(monkeypatch)  # so INC runs them all
    data, root = exported
    cfg = WeightOnlyConfig(
        algorithm="autotune",
        embeddings="fp32",
        calibration_samples=8,
        autotune={
            "algorithms": ["rtn", "gptq"],
            "group_sizes": [16],
            "keep_fp32_options": [[], KEEP_LAYER_1],
            "tolerable_loss": 0.0,
        },
    )
    info = quantize(cfg, root / "fp32", tmp_path / "auto", _ctx(data, tmp_path))
    trials = info["autotune"]["trials"]
    assert [(t["algorithm"], t["keep_fp32"] != []) for t in trials] == [
        ("rtn", False),
        ("gptq", False),
        ("rtn", True),
        ("gptq", True),
    ]
    for t in trials:
        assert isinstance(t["as_configured"], bool) and t["quantized_layers"] > 0
        assert t["as_configured"] == (
            t["quantized_layers"] == t["expected_quantized_layers"] and t["built_group_sizes"] == [16]
        )
    assert trials[2]["as_configured"]  # RTN honours the layer kept in float
    # INC 3.10's GPTQ quantizes the layer meant to stay in float anyway: recorded, not hidden
    assert trials[3]["quantized_layers"] >= trials[3]["expected_quantized_layers"]
