"""The HTML run report: written by `ecgcnn train`, rebuilt by `ecgcnn report`, opened in Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from ecgcnn.errors import EcgcnnError
from ecgcnn.report import SECTIONS, write_report

pytestmark = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"


def ecgcnn(*args):
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "ecgcnn", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip


class Page(HTMLParser):
    """Section ids, their headings, images and the text of each section."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.images: list[dict[str, str]] = []
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._current = a.get("id", "")
            self.sections[self._current] = ""
        elif tag == "img":
            self.images.append(a | {"section": self._current or ""})

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.sections[self._current] += data


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def decode_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    data = base64.b64decode(src[len(prefix) :], validate=True)
    assert data[:8] == PNG
    Image.open(io.BytesIO(data)).verify()
    return Image.open(io.BytesIO(data))


@pytest.fixture(scope="module")
def run_dir(synthetic_root, tmp_path_factory):
    """A two-fold run trained by the command, which writes report.html at the end."""
    out = tmp_path_factory.mktemp("report") / "run"
    proc = ecgcnn("train", "--data-root", synthetic_root, "--out", out, "--folds", 2, "--epochs", 2,
                  "--batch-size", 32, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out / 'report.html'}" in proc.stderr.replace("\n", "")
    return out


def test_train_writes_a_complete_self_contained_report(run_dir):
    page = parse(run_dir / "report.html")
    assert list(page.sections) == [sid for sid, _ in SECTIONS]
    for sid, title in SECTIONS:
        assert page.sections[sid].strip().startswith(title)
    assert len(page.images) >= 6
    for img in page.images:
        assert decode_png(img["src"]).size[0] > 100
        assert img["alt"]
    text = (run_dir / "report.html").read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch: opens offline
    assert "<script" not in text
    # per-fold and mean +- std metrics, and every class in the per-class table
    assert "fold_0" in page.sections["metrics"] and "fold_1" in page.sections["metrics"]
    assert "mean ± std" in page.sections["metrics"]
    classes = json.loads((run_dir / "config.json").read_text())["classes"]
    assert all(c in page.sections["classes"] for c in classes)
    # explained examples: ECGs on paper, labelled with what they are
    ecgs = [i for i in page.images if i["section"] == "examples"]
    assert len(ecgs) >= 5
    assert "true positive" in page.sections["examples"]
    assert (
        "Class-weighted training pushes" in page.sections["calibration"]
    )  # the seed recipe's loss
    html = (run_dir / "report.html").read_text()
    assert ">folds<" in html and ">train_folds<" not in html  # only the settings this protocol used
    assert decode_png(ecgs[0]["src"]).size[0] > 900


def test_report_command_rebuilds_without_retraining(run_dir, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in run_dir.glob("fold_*/*") if p.is_file()}
    out = tmp_path / "r.html"
    proc = ecgcnn("report", run_dir, "--out", out, "--no-examples")
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stderr.replace("\n", "")
    page = parse(out)
    assert list(page.sections) == [sid for sid, _ in SECTIONS]
    assert "Left out" in page.sections["examples"]
    assert not [i for i in page.images if i["section"] == "examples"]
    assert before == {p: p.stat().st_mtime_ns for p in run_dir.glob("fold_*/*") if p.is_file()}


def test_report_says_so_when_the_data_root_is_gone(run_dir, tmp_path):
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    config = json.loads((copy / "config.json").read_text())
    config["data_root"] = str(tmp_path / "moved-away")
    (copy / "config.json").write_text(json.dumps(config))
    page = parse(write_report(copy))
    assert "no longer there" in page.sections["examples"]
    assert str(tmp_path / "moved-away") in page.sections["examples"]
    assert all(decode_png(i["src"]) for i in page.images)


def test_report_of_a_partly_trained_run(run_dir, tmp_path):
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    shutil.rmtree(copy / "fold_1")
    (copy / "cv_results.json").unlink()  # a run still training: no summary yet
    page = parse(write_report(copy, examples=False))
    assert "Not trained yet: fold_1" in page.sections["metrics"]
    # a fold with its history but no metrics was interrupted, not "not trained"
    (copy / "fold_1").mkdir()
    shutil.copy(run_dir / "fold_1" / "history.json", copy / "fold_1" / "history.json")
    page = parse(write_report(copy, examples=False))
    assert "Unfinished (still training, or interrupted): fold_1" in page.sections["metrics"]
    (copy / "fold_0" / "predictions_val.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(EcgcnnError, match="predictions_val.npz: not readable predictions"):
        write_report(copy)
    shutil.rmtree(copy / "fold_0")
    with pytest.raises(EcgcnnError, match="no fold trained yet"):
        write_report(copy)


def test_a_fold_of_cv_results_without_its_files_is_named_not_silently_dropped(run_dir, tmp_path):
    """The page's means would differ from cv_results.json's without saying why."""
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (copy / "fold_0" / "metrics.json").unlink()
    page = parse(write_report(copy, examples=False))
    text = " ".join(page.sections["metrics"].split())
    assert "fold_0 is in cv_results.json, but its metrics.json is missing" in text
    assert "Not trained yet" not in text


def test_holdout_records_are_counted_once_and_called_holdout(run_dir, tmp_path):
    """Every CV fold scores the same holdout records: their count is one fold's, not the sum."""
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    for fold in ("fold_0", "fold_1"):
        metrics = json.loads((copy / fold / "metrics.json").read_text())
        metrics["records"] = 17
        for c in metrics["per_class"].values():
            c["support"] = 6
        (copy / fold / "metrics_test.json").write_text(json.dumps(metrics))
    import re

    html = write_report(copy, examples=False).read_text()
    cells = re.findall(r"<td>(.*?)</td>", html.split("<b>mean ± std</b></td><td>holdout")[1])
    assert cells[:2] == ["", "17"], cells[:3]  # (epoch), records
    holdout = html.split("<h3>Holdout</h3>")[1]
    assert "support (holdout, the same records for every fold)" in holdout
    assert "support (test" not in html
    assert re.findall(r"<td>(.*?)</td>", holdout)[1] == "6"


def test_the_loss_note_says_whether_the_loss_was_class_weighted(run_dir, tmp_path):
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    config = json.loads((copy / "config.json").read_text())
    config["recipe"]["class_weighted"] = False
    config["recipe"]["select_best"] = False  # the last epoch kept: no epoch chosen on validation
    config["only_fold"] = 1  # how the last --only-fold process left it: not a setting of the run
    (copy / "config.json").write_text(json.dumps(config))
    page = parse(write_report(copy, examples=False))
    note = " ".join(page.sections["metrics"].split())
    assert "the thresholds were chosen on the same fold" in note and "best epoch" not in note
    assert "class weights included" not in page.sections["training"]
    assert "unweighted" in page.sections["training"]
    assert "only_fold" not in page.sections["config"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("fold_0/metrics.json", {"records": 3}, "fold_0/metrics.json: no 'per_class'"),
        ("fold_0/metrics.json", "x", "fold_0/metrics.json: expected a JSON object"),
        ("config.json", None, "config.json: expected a JSON object"),
        ("fold_0/history.json", {"a": 1}, "fold_0/history.json: expected a list of epochs"),
        ("fold_0/metrics.json", "no threshold", "fold_0/metrics.json: class "),
    ],
)
def test_saved_files_of_the_wrong_shape_get_one_line_errors(run_dir, tmp_path, name, content,
                                                              expected):  # fmt: skip
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    if content == "no threshold":
        content = json.loads((copy / name).read_text())
        del next(iter(content["per_class"].values()))["threshold"]
    (copy / name).write_text(json.dumps(content))
    with pytest.raises(EcgcnnError, match=expected.replace("/", "[/]")):
        write_report(copy, examples=False)


def test_report_out_is_checked_before_any_work(run_dir, tmp_path):
    proc = ecgcnn("report", run_dir, "--out", tmp_path, "--no-examples")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"--out {tmp_path} is a folder" in proc.stderr.replace("\n", ""), proc.stderr


def test_report_data_root_draws_the_examples_of_a_moved_run(run_dir, synthetic_root, tmp_path):
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    config = json.loads((copy / "config.json").read_text())
    config["data_root"] = str(tmp_path / "moved-away")
    (copy / "config.json").write_text(json.dumps(config))
    proc = ecgcnn("report", copy, "--out", tmp_path / "a.html")
    assert proc.returncode == 0 and "warning: " in proc.stderr and "--data-root" in proc.stderr
    page = parse(tmp_path / "a.html")
    assert "--data-root" in page.sections["examples"]
    proc = ecgcnn("report", copy, "--out", tmp_path / "b.html", "--data-root", synthetic_root)
    assert proc.returncode == 0, proc.stderr
    assert [i for i in parse(tmp_path / "b.html").images if i["section"] == "examples"]


def test_report_errors(tmp_path):
    with pytest.raises(EcgcnnError, match="not a run folder"):
        write_report(tmp_path)
    proc = ecgcnn("report", tmp_path / "nowhere")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'nowhere'}: no such folder" in proc.stderr.replace("\n", "")
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def browser(profile: Path):
    from conftest import headless_chromium

    return headless_chromium(profile, window="1400,1000")


def test_report_opens_in_headless_chromium(run_dir, tmp_path):
    driver = browser(tmp_path / "chromium-profile")
    try:
        driver.get((run_dir / "report.html").resolve().as_uri())
        assert driver.title.startswith("ecgcnn report")
        ids = driver.execute_script(
            "return Array.from(document.querySelectorAll('section')).map(s => s.id)"
        )
        assert ids == [sid for sid, _ in SECTIONS]
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
        )
        assert images and all(done and width > 0 for done, width, _ in images), images
        # on a phone the page scrolls down, not sideways: wide tables and figures scroll in place
        driver.set_window_size(400, 900)
        wide = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert wide[0] <= wide[1], f"the page is {wide[0]} px wide in a {wide[1]} px window"
        driver.set_window_size(1400, 1000)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(height, 16000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    print(f"screenshot of the report: {shot}")
    image = Image.open(shot)
    assert image.size[0] >= 1000 and image.size[1] > 2000
    # not a blank page: the screenshot has the header's dark band and the plots' colours
    assert len(image.convert("RGB").resize((64, 256)).getcolors(65536)) > 50


def test_examples_of_a_windowed_run_show_the_probabilities_they_were_chosen_by(
    synthetic_root, tmp_path
):
    """A benchmark-recipe run scores 2.5 s windows: each example's caption must give the saved
    (window-aggregated) probability, not one pass of the model over the whole record."""
    import re

    import numpy as np

    from ecgcnn.recipes import get_recipe
    from ecgcnn.train import TrainConfig, train

    out = tmp_path / "bench"
    train(TrainConfig(data_root=str(synthetic_root), out=str(out), protocol="benchmark", val_fold=9, test_fold=10,
                      recipe=get_recipe("benchmark").with_overrides(epochs=2, batch_size=32, aggregate="mean"),
                      progress=False))  # fmt: skip
    html = write_report(out, out / "again.html")
    saved = np.load(out / "benchmark" / "predictions_val.npz")
    classes = json.loads((out / "config.json").read_text())["classes"]
    text = Path(html).read_text()
    # three decimals: two would show a positive and a negative on either side of the threshold
    # as the same p
    shown = re.findall(r"<h3>([^<]+)</h3>|ecg_id (\d+), p = (0\.\d\d\d)<", text)
    checked, current = 0, None
    for heading, ecg_id, p in shown:
        if heading:
            current = classes.index(heading) if heading in classes else None
            continue
        if current is None:
            continue
        row = int(np.flatnonzero(saved["ecg_ids"] == int(ecg_id))[0])
        assert float(p) == pytest.approx(saved["y_prob"][row, current], abs=0.0006), (
            ecg_id,
            heading,
        )
        checked += 1
    assert checked >= 3
    assert (
        "not class-weighted" in text and "Class-weighted training pushes" not in text
    )  # plain BCE
    assert ">train_folds<" in text and ">holdout_fold<" not in text and ">folds<" not in text


def test_a_one_epoch_run_draws_its_points(run_dir, tmp_path, monkeypatch):
    """A single epoch is a point, which a line without markers does not show."""
    from ecgcnn import report

    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    for fold in ("fold_0", "fold_1"):
        history = json.loads((copy / fold / "history.json").read_text())
        (copy / fold / "history.json").write_text(json.dumps(history[:1]))
    figures = []
    monkeypatch.setattr(report, "figure_png", lambda fig, *a, **k: figures.append(fig) or PNG)
    report.plot_training(report.load_run(copy))
    lines = [line for ax in figures[0].axes for line in ax.get_lines()]
    assert lines and all(line.get_marker() not in (None, "None", "") for line in lines)
