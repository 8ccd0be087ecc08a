"""The README documents every command the CLI has; the version is one everywhere."""

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


def test_version_is_the_installed_packages():
    import subprocess
    import sys
    from importlib.metadata import version

    import ecgcnn

    out = subprocess.run([sys.executable, "-m", "ecgcnn", "--version"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"ecgcnn {ecgcnn.__version__}\n"
    assert version("ecgcnn") == ecgcnn.__version__  # pyproject takes it from ecgcnn/__init__.py


def test_version_and_help_do_not_import_torch():
    # `ecgcnn --version` and `--help` answer without loading torch (seconds) or the recording stack.
    import subprocess
    import sys

    probe = ("import sys\nfrom ecgcnn.cli import main\nsys.argv = ['ecgcnn', {arg!r}]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'wfdb', 'scipy', 'pandas') if m in sys.modules))")  # fmt: skip
    for arg in ("--version", "--help"):
        out = subprocess.run([sys.executable, "-c", probe.format(arg=arg)], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "[]", (arg, out.stdout[-300:])


def test_the_public_names_load_on_first_use():
    import ecgcnn

    assert set(ecgcnn.__all__) <= set(dir(ecgcnn))
    for name in ecgcnn.__all__:
        assert getattr(ecgcnn, name) is not None
    from ecgcnn import create_model, load_model

    assert callable(create_model) and callable(load_model)


def test_submodules_are_attributes_of_the_package():
    # as the README spells them (ecgcnn.models.Ensemble, ecgcnn.recording.remove_baseline)
    import subprocess
    import sys

    probe = "import ecgcnn\nprint(ecgcnn.models.Ensemble.__name__, ecgcnn.recording.remove_baseline.__name__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Ensemble", "remove_baseline"]
