"""Stage folders that survive: written aside then renamed into place, reused when their key matches.

Layout: ``<run>/<stage>/`` holds the stage's files plus ``stage.json`` (its key, record, timing and the
sha256 of every file it wrote). A folder without ``stage.json`` never exists under its final name, so a
killed run leaves no artifact that looks complete, and the next run resumes from the last finished stage.
A finished stage whose files changed afterwards is refused, not reused. One run at a time holds the
folder's lock; the workers of one ``edgecompress search`` share the folder, and each stage is built under
its own lock (``.<stage>.lock``), so no two processes build the same stage.
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
MARKER = ".edgecompress-run"
LOCK_FILE = ".edgecompress-run.lock"
BUILT_LOG = ".stages.log"  # one line per stage built (or copied): which process, when, how long
_NOT_TRACKED = {STAGE_FILE, "manifest.json"}  # the manifest gains benchmark figures after the stage


@dataclass
class StageResult:
    name: str
    path: Path
    key: str
    record: dict
    reused: bool
    seconds: float


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (relative names), except the stage's own bookkeeping files."""
    from edgecompress.export.artifact import sha256_file

    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in _NOT_TRACKED
    }


def check_can_write(root: Path, where: str) -> None:
    """Before the first stage: the run folder can be made (no file on its path) and written (the nearest
    folder that exists is writable), so a bad ``output_dir`` / ``--output`` is one line naming it, not an
    OSError from the lock file or a stage after training. Raises an EdgeCompressError."""
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not existing.is_dir():
        if existing == root:
            raise EdgeCompressError(f"'{root}' exists and is not a folder", where=where)
        raise EdgeCompressError(
            f"'{existing}' is a file, so no run folder can be made at '{root}'", where=where
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EdgeCompressError(
            f"'{existing}' is not writable (permission denied), so the run cannot write '{root}'; choose "
            "another output folder",
            where=where,
        )


@dataclass
class RunFolder:
    root: Path
    force: bool = False
    is_main_process: bool = True
    where: str = "output_dir"  # what named the folder, for error messages (output_dir or --output)
    hold_lock: bool = True  # False: a search worker, whose parent process holds the folder's lock
    results: list[StageResult] = field(default_factory=list)
    _lock: object = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.is_main_process:
            check_can_write(self.root, self.where)
        elif self.root.exists() and not self.root.is_dir():
            raise EdgeCompressError(f"'{self.root}' exists and is not a folder", where=self.where)
        marker = self.root / MARKER
        if self.root.is_dir() and any(self.root.iterdir()) and not marker.exists():
            raise EdgeCompressError(
                f"'{self.root}' is not empty and was not made by edgecompress; choose another output folder",
                where=self.where,
            )
        if self.is_main_process:
            made_here = not self.root.exists()
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                if self.hold_lock:
                    self._acquire()
                marker.touch()
            except OSError as exc:
                self.release()
                if made_here:  # leave nothing behind
                    shutil.rmtree(self.root, ignore_errors=True)
                raise EdgeCompressError(
                    f"cannot write the run folder '{self.root}' ({exc.strerror or exc}); choose another output folder",
                    where=self.where,
                ) from None

    def _acquire(self) -> None:
        """Hold the folder's lock for this run: a second run on the same folder stops at once (exit 2)."""
        from filelock import FileLock, Timeout

        lock = FileLock(self.root / LOCK_FILE, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise EdgeCompressError(
                f"'{self.root}' is in use by another edgecompress run (it holds {LOCK_FILE}); wait for it to "
                "finish or choose another output folder",
                where=self.where,
            ) from None
        self._lock = lock

    def release(self) -> None:
        """Let another run use the folder (the operating system also releases the lock when we exit)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def finished(self, name: str, key: str) -> dict | None:
        """The stored stage record if ``name`` finished with this key (and --force is off).

        Raises an EdgeCompressError when the finished folder's files changed after it was written.
        """
        meta = self.root / name / STAGE_FILE
        if self.force or not meta.is_file():
            return None
        info = json.loads(meta.read_text())
        if info.get("key") != key:
            return None
        self.verify(name, info)
        return info

    def verify(self, name: str, info: dict) -> None:
        recorded = info.get("files")
        if recorded is None:  # written before stages recorded their files
            return
        current = file_hashes(self.root / name)
        changed = sorted(f for f in recorded.keys() | current.keys() if recorded.get(f) != current.get(f))
        if changed:
            what = ", ".join(
                f"{f} ({'missing' if f not in current else 'added' if f not in recorded else 'changed'})"
                for f in changed[:3]
            ) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            raise EdgeCompressError(
                f"files differ from what the stage wrote (sha256 in {STAGE_FILE}): {what}; delete the folder to "
                "rebuild it, or run with --force",
                where=str(self.root / name),
            )

    def finished_elsewhere(self, key: str) -> Path | None:
        """A folder of this run finished with ``key`` under another name (a search trial's prune stage is the
        chosen recipe's ``pruned``), found by scanning the stage records; None when there is none."""
        for meta in sorted(self.root.rglob(STAGE_FILE)):
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if info.get("key") == key and not meta.parent.name.startswith("."):
                self.verify(str(meta.parent.relative_to(self.root)), info)
                return meta.parent
        return None

    def stage(
        self,
        name: str,
        key: str,
        build: Callable[[Path], dict],
        sync: Callable[[], None] = lambda: None,
        copy_from: Path | None = None,
    ) -> StageResult:
        """Reuse ``<run>/<name>`` if finished with ``key``, else run ``build(tmp_dir)`` (or copy ``copy_from``,
        a folder finished with the same key) and swap it in atomically, under the stage's own lock.

        ``build`` may run on every process (distributed training); only the main process writes and swaps.
        """
        if not self.is_main_process:
            return self._stage(name, key, build, sync, copy_from)
        from filelock import FileLock

        with FileLock(self.root / f".{name.replace('/', '_')}.lock"):  # a file: the folder holds only stages
            return self._stage(name, key, build, sync, copy_from)

    def _stage(self, name, key, build, sync, copy_from) -> StageResult:
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
            if copy_from is not None:
                shutil.rmtree(tmp)
                shutil.copytree(copy_from, tmp, ignore=shutil.ignore_patterns(STAGE_FILE))
                copied = json.loads((copy_from / STAGE_FILE).read_text())
                record = copied.get("record", {})
            else:
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
                "files": file_hashes(tmp),
                **({"copied_from": str(copy_from.relative_to(self.root))} if copy_from is not None else {}),
            }
            (tmp / STAGE_FILE).write_text(json.dumps(meta, indent=2, default=str))
            final.parent.mkdir(parents=True, exist_ok=True)
            old = self.root / f".{name.replace('/', '_')}.old"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            with open(self.root / BUILT_LOG, "a") as log:
                how = "copied" if copy_from is not None else "built"
                log.write(f"{meta['finished']}\t{how}\t{name}\t{key[:16]}\tpid {os.getpid()}\t{seconds} s\n")
        sync()
        result = StageResult(name, final, key, record, False, seconds)
        self.results.append(result)
        return result
