"""The README documents every command the CLI has."""

import re
from pathlib import Path

from ecgcnn.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def command_names() -> list[str]:
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    for group in app.registered_groups:
        names += [f"{group.name} {c.name or c.callback.__name__}"
                  for c in group.typer_instance.registered_commands]  # fmt: skip
    return names


def test_every_command_has_a_readme_heading():
    headings = [line for line in README.read_text().splitlines() if line.startswith("### ")]
    documented = {m for line in headings for m in re.findall(r"`ecgcnn ([a-z -]+?)`", line)}
    names = command_names()
    assert {"train", "cache list", "cache clear"} <= set(names)
    assert [n for n in names if n not in documented] == []
