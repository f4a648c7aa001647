"""Stage folders that survive: written aside then renamed into place, reused when their key matches.

Layout: ``<run>/<stage>/`` holds the stage's files plus ``stage.json`` (its key, record and timing).
A folder without ``stage.json`` never exists under its final name, so a killed run leaves no artifact that
looks complete, and the next run resumes from the last finished stage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress.errors import EdgeCompressError

STAGE_FILE = "stage.json"


@dataclass
class StageResult:
    name: str
    path: Path
    key: str
    record: dict
    reused: bool
    seconds: float


@dataclass
class RunFolder:
    root: Path
    force: bool = False
    is_main_process: bool = True
    results: list[StageResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise EdgeCompressError(f"'{self.root}' exists and is not a folder", where="output_dir")
        marker = self.root / ".edgecompress-run"
        if self.root.is_dir() and any(self.root.iterdir()) and not marker.exists():
            raise EdgeCompressError(
                f"'{self.root}' is not empty and was not made by edgecompress; choose another output folder",
                where="output_dir",
            )
        if self.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            marker.touch()

    def finished(self, name: str, key: str) -> dict | None:
        """The stored stage record if ``name`` finished with this key (and --force is off)."""
        meta = self.root / name / STAGE_FILE
        if self.force or not meta.is_file():
            return None
        info = json.loads(meta.read_text())
        return info if info.get("key") == key else None

    def stage(
        self, name: str, key: str, build: Callable[[Path], dict], sync: Callable[[], None] = lambda: None
    ) -> StageResult:
        """Reuse ``<run>/<name>`` if finished with ``key``, else run ``build(tmp_dir)`` and swap it in atomically.

        ``build`` may run on every process (distributed training); only the main process writes and swaps.
        """
        final = self.root / name
        info = self.finished(name, key)
        if info is not None:
            result = StageResult(name, final, key, info.get("record", {}), True, info.get("seconds", 0.0))
            self.results.append(result)
            return result
        tmp = self.root / f".{name.replace('/', '_')}.partial"
        if self.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        sync()
        start = time.perf_counter()
        try:
            record = build(tmp)
        except BaseException:
            if self.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = round(time.perf_counter() - start, 1)
        if self.is_main_process:
            meta = {
                "stage": name,
                "key": key,
                "seconds": seconds,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "record": record,
            }
            (tmp / STAGE_FILE).write_text(json.dumps(meta, indent=2, default=str))
            final.parent.mkdir(parents=True, exist_ok=True)
            old = self.root / f".{name.replace('/', '_')}.old"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        sync()
        result = StageResult(name, final, key, record, False, seconds)
        self.results.append(result)
        return result
