"""What a stage reads from outside the run folder, named by its bytes rather than by its path.

A stage key that holds only a path (a CSV file, a model folder) reuses the stage after the file was changed
in place; with the sha256 of what is there, a changed file changes the key and the stage re-runs.
"""

from __future__ import annotations

from pathlib import Path

from edgecompress.export.artifact import sha256_file


def content_fingerprint(path: str | Path) -> dict[str, str] | None:
    """sha256 of a file (under its name), or of every file below a folder (under its relative name; hidden
    files and folders such as ``.git`` left out, as the readers leave them out); None when nothing is there
    (the stage that reads it then says so)."""
    root = Path(path).expanduser()
    if root.is_file():
        return {root.name: sha256_file(root)}
    if not root.is_dir():
        return None
    relative = (f.relative_to(root) for f in sorted(root.rglob("*")) if f.is_file())
    return {str(r): sha256_file(root / r) for r in relative if not any(p.startswith(".") for p in r.parts)}
