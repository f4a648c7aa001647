"""``edgecompress`` CLI entry for tests/test_distributed.py, started once per process by ``accelerate launch``.

Before handing over to the real CLI it installs a Python audit hook that records every file-system change
the process makes under ``EC_AUDIT_ROOT`` (opens for writing, mkdir, rename/replace, remove, rmtree), and
at exit writes them to ``EC_AUDIT_LOG/rank<RANK>.json``. The test reads those logs to check that only
rank 0 writes into the run folder. Writers in native code (safetensors) escape the hook, but every stage
folder also gets Python-written files (stage.json, config.json), so a rank writing artifacts shows up.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys

ROOT = os.path.realpath(os.environ["EC_AUDIT_ROOT"])
LOG = os.path.join(os.environ["EC_AUDIT_LOG"], f"rank{os.environ.get('RANK', '0')}.json")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate", "os.link"}
changes: list[list[str]] = []


def _inside(path) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False
    path = os.fsdecode(path)
    return os.path.realpath(path) == ROOT or os.path.realpath(path).startswith(ROOT + os.sep)


def _hook(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        if writing and _inside(path):
            changes.append([event, os.fsdecode(path)])
    elif event in CHANGES:
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        if any(_inside(p) for p in paths):
            changes.append([event, *(os.fsdecode(p) for p in paths)])


def _write_log() -> None:
    with open(LOG, "w") as fh:
        json.dump({"rank": int(os.environ.get("RANK", "0")), "changes": changes}, fh)


atexit.register(_write_log)
sys.addaudithook(_hook)
sys.argv[0] = "edgecompress"
runpy.run_module("edgecompress.cli", run_name="__main__", alter_sys=True)
