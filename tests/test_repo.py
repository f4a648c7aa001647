"""The repository's promises: README's set-up commands, CI calling the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup-commands -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its setup-commands block"
    lines = [
        line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 2, lines
    return {"run": lines[0], "test": lines[1]}


def test_readme_has_exactly_two_setup_commands():
    cmds = readme_commands()
    assert "edgecompress run recipes/bert_to_tiny.yaml" in cmds["run"]
    assert "pytest" in cmds["test"]
    assert cmds["run"].startswith("bash install.sh") and cmds["test"].startswith("bash install.sh")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()["test"] in ci
