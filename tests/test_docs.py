"""The README documents every command the CLI has; the version is one everywhere."""

import re
from pathlib import Path

import pytest

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


def readme_section(heading: str) -> str:
    """The README's text under ``heading`` (a whole heading line), up to the next heading of its level."""
    text = README.read_text()
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", text[start:])]
    return text[start : start + ends[0]] if ends else text[start:]


def python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize(
    ("trained", "aggregate", "rate"), [("keep", "max", 500), ("median", "mean", 250)]
)
def test_the_export_section_s_onnxruntime_example_gives_predictor_s_probabilities(
    trained, aggregate, rate, tmp_path, monkeypatch
):
    """An ONNX-only user following README's export section gets what predict, serve and Predictor
    give: the baseline step, resampling, windows (the last aligned to the end) and aggregation."""
    import numpy as np

    from ecgcnn import Predictor
    from ecgcnn.export import export_onnx
    from ecgcnn.synthetic import synthesize_ecg
    from test_export import random_checkpoint, retrained_as

    section = readme_section("### `ecgcnn export`")
    for word in ("`default_baseline`", "`leads`", "`fs`", "mV", "`window`", "`stride`",
                 "`aggregate`", "sosfiltfilt", "padlen", "ecgcnn.recording.remove_baseline"):  # fmt: skip
        assert word in section, word
    (code,) = python_blocks(section)
    random_checkpoint("cnn1d", tmp_path / "keep.pt")
    ckpt = retrained_as(tmp_path / "keep.pt", tmp_path / "ckpt.pt", baseline=trained,
                        aggregate=aggregate)  # fmt: skip
    export_onnx(ckpt, tmp_path / "model.onnx")
    # 12.3 s: 2.5 s windows every 1.25 s leave a tail, so the last window is aligned to the end;
    # an offset and a drift, so that the baseline step matters
    ecg = synthesize_ecg(["IMI"], fs=rate, duration_s=12.3, rng=np.random.default_rng(0))
    t = np.arange(len(ecg))[:, None] / rate
    ecg = (ecg + np.linspace(-1, 1, 12) + 0.4 * np.sin(2 * np.pi * 0.2 * t)).astype(np.float32)
    np.save(tmp_path / "ecg.npy", ecg)
    code = code.replace("prob = predict(ecg, 500)", f"prob = predict(ecg, {rate})")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (ecgcnn export)", "exec"), namespace)  # noqa: S102
    for predictor in (
        Predictor.from_onnx(tmp_path / "model.onnx"),
        Predictor.from_checkpoint(ckpt),
    ):
        want = predictor.predict(ecg, fs=rate)
        assert want.windows == 9 and predictor.aggregate == aggregate
        np.testing.assert_allclose(namespace["prob"], list(want.probabilities.values()), atol=1e-5)
        assert namespace["labels"] == want.labels
    kept = Predictor.from_onnx(tmp_path / "model.onnx").predict(ecg, fs=rate, baseline="keep")
    assert np.abs(namespace["prob"] - list(kept.probabilities.values())).max() > 1e-3


@pytest.mark.parametrize("windowed", [True, False])
def test_the_checkpoints_section_s_example_scores_as_predict_does(windowed, tmp_path):
    """Thresholds of a windowed checkpoint were tuned on window-aggregated probabilities: the
    Checkpoints section must say so and its example must score a record as predict does."""
    import numpy as np
    import torch

    from ecgcnn import Predictor
    from ecgcnn.recipes import get_recipe
    from ecgcnn.synthetic import synthesize_ecg
    from ecgcnn.train import window_settings
    from test_export import random_checkpoint, retrained_as

    section = readme_section("## Checkpoints")
    for key in [*window_settings(get_recipe("benchmark"), 100), "thresholds", "baseline"]:
        assert f"`{key}`" in section, key
    assert "Predictor" in section and "nothing else needed" not in section
    (code,) = python_blocks(section)
    random_checkpoint("cnn1d", tmp_path / "one.pt")  # 2.5 s, no window
    ckpt = tmp_path / "one.pt"
    if windowed:  # the benchmark recipe's: 10 s records, 2.5 s windows every 1.25 s
        ckpt = retrained_as(ckpt, tmp_path / "windowed.pt", input_length=1000, window=250,
                            stride=125, aggregate="max")  # fmt: skip
    seconds = 10 if windowed else 2.5
    ecg = synthesize_ecg(["IMI"], fs=100, duration_s=seconds, rng=np.random.default_rng(1))
    assert 'ecgcnn.load_model("runs/cnn1d-top5/fold_0/checkpoint.pt"' in code
    assert 'torch.zeros(1, 12, meta["input_length"])' in code
    code = code.replace("runs/cnn1d-top5/fold_0/checkpoint.pt", str(ckpt))
    code = code.replace('torch.zeros(1, 12, meta["input_length"])', "ECG")
    namespace = {"ECG": torch.from_numpy(np.ascontiguousarray(ecg.T))[None]}
    exec(compile(code, "README.md (Checkpoints)", "exec"), namespace)  # noqa: S102
    want = Predictor.from_checkpoint(ckpt).predict(ecg, fs=100, baseline="keep")
    assert want.windows == (7 if windowed else 1)
    got = namespace["prob"].detach().numpy()[0]
    np.testing.assert_allclose(got, list(want.probabilities.values()), atol=1e-5)
    labels = [c for c, on in zip(want.probabilities, namespace["labels"][0].tolist(), strict=True)
              if on]  # fmt: skip
    assert labels == want.labels


def test_the_public_api_is_documented():
    import inspect

    import ecgcnn

    undocumented = []
    for name in ecgcnn.__all__:
        obj = getattr(ecgcnn, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if not inspect.getdoc(obj):
            undocumented.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                func = getattr(member, "__func__", member)  # classmethods and staticmethods too
                if not attr.startswith("_") and inspect.isfunction(func) and not func.__doc__:
                    undocumented.append(f"{name}.{attr}")
    assert undocumented == []
    for method in (ecgcnn.Predictor.predict, ecgcnn.Predictor.predict_record):
        doc = " ".join(inspect.getdoc(method).split())
        for words in ("high-pass filtered", "as recorded", "window", "aggregated", "mV"):
            assert words in doc, (method.__name__, words)
