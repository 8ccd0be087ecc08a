"""``ecgcnn predict --every``: a long recording (a Holter) scored part by part, one row per part,
read from disk a few minutes at a time where the format allows it (WFDB, ISHNE)."""

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

import ecgcnn.predict
import ecgcnn.recording
from ecgcnn import Predictor
from ecgcnn.errors import EcgcnnError
from ecgcnn.predict import timeline_bounds
from ecgcnn.recording import read_recording
from test_ishne import write_ishne
from test_recording import ecg, write_wfdb


@pytest.fixture(scope="module")
def predictor(served_checkpoint):
    return Predictor.from_checkpoint(served_checkpoint)  # 2.5 s windows at 100 Hz


def probs(prediction):
    return np.array(list(prediction.probabilities.values()))


def long_ecg(seconds, seed=0):
    """An ECG whose rhythm changes every 10 s, so that the parts differ."""
    parts = [ecg(seconds=10, seed=seed + k, statements=[("NORM", "AFIB", "CLBBB")[k % 3]])
             for k in range(int(np.ceil(seconds / 10)))]  # fmt: skip
    return np.concatenate(parts)[: int(round(seconds * 100))]


def test_timeline_bounds_cut_every_so_often_and_join_a_short_remainder():
    assert timeline_bounds(0, 30, 10, 2.5) == [(0, 10), (10, 20), (20, 30)]
    assert timeline_bounds(0, 35, 10, 2.5) == [(0, 10), (10, 20), (20, 30), (30, 35)]
    assert timeline_bounds(0, 31, 10, 2.5) == [(0, 10), (10, 20), (20, 31)]  # 1 s < the window
    assert timeline_bounds(5, 12, 10, 2.5) == [(5, 12)]
    assert timeline_bounds(0, 2, 10, 2.5) == [(0, 2)]  # too short: the model says so
    bounds = timeline_bounds(0, 86_400, 0.1 * 3, 0.25)  # no drift over a day in steps of 0.3 s
    assert len(bounds) == 288_000 and bounds[-1] == pytest.approx((86_399.7, 86_400))


def test_every_part_is_predicted_as_that_part_alone(predictor, tmp_path):
    write_wfdb(tmp_path / "holter", long_ecg(65))
    sig = read_recording(tmp_path / "holter").signal  # as stored: 16 bits, 1 µV a step
    result = predictor.predict_paths([tmp_path / "holter"], every=10)
    assert result.failures == []
    assert [(p.start_s, p.duration_s) for p in result.predictions] == [
        (0, 10), (10, 10), (20, 10), (30, 10), (40, 10), (50, 10), (60, 5)
    ]  # fmt: skip
    for p in result.predictions:
        assert p.record == str(tmp_path / "holter")
        i, j = int(p.start_s * 100), int((p.start_s + p.duration_s) * 100)
        np.testing.assert_allclose(probs(p), probs(predictor.predict(sig[i:j], fs=100)), atol=1e-6)
    assert len({tuple(np.round(probs(p), 4)) for p in result.predictions}) > 1


def test_the_parts_follow_the_segment_and_a_short_end_joins_the_part_before(predictor, tmp_path):
    write_wfdb(tmp_path / "holter", long_ecg(41))
    sig = read_recording(tmp_path / "holter").signal
    result = predictor.predict_paths([tmp_path / "holter"], every=10, segment=(5.0, 36.0))
    assert [(p.start_s, p.duration_s) for p in result.predictions] == [(5, 10), (15, 10), (25, 11)]
    np.testing.assert_allclose(
        probs(result.predictions[-1]), probs(predictor.predict(sig[2500:3600], fs=100)), atol=1e-6
    )


def test_a_disconnected_stretch_fails_alone(predictor, tmp_path):
    sig = long_ecg(40)
    sig[1000:2000, 7] = 0.0  # V2 off for 10 s
    write_wfdb(tmp_path / "holter", sig)
    result = predictor.predict_paths([tmp_path / "holter"], every=10)
    assert [p.start_s for p in result.predictions] == [0, 20, 30]
    [failure] = result.failures
    assert (failure.record, failure.start_s, failure.end_s) == (str(tmp_path / "holter"), 10, 20)
    assert str(failure).startswith(f"{tmp_path / 'holter'} [10-20 s]: flat lead(s) V2")
    assert "flat lead(s) V2" in failure.problem
    # in the table, the failed part keeps the record's name and its place in time
    rows = list(csv.DictReader(io.StringIO(result.render("csv"))))
    assert [(r["record"], r["start_s"], r["end_s"], bool(r["error"])) for r in rows] == [
        (str(tmp_path / "holter"), a, b, a == "10")
        for a, b in (("0", "10"), ("10", "20"), ("20", "30"), ("30", "40"))
    ]
    failed = json.loads(result.render("json"))["failures"]
    assert failed == [{"record": str(tmp_path / "holter"), "start_s": 10, "end_s": 20,
                       "error": failure.problem}]  # fmt: skip


def test_parts_end_where_the_next_begins_at_a_rate_of_no_whole_samples(predictor, tmp_path):
    """At 333.333 Hz a part of 7 s is not a whole number of samples: end_s is the cut, not the
    start plus the samples' duration (7, 14.002...)."""
    from ecgcnn.recording import resample

    sig = resample(long_ecg(30), 100, 1000 / 3)
    np.save(tmp_path / "r333.npy", sig)
    result = predictor.predict_paths([tmp_path / "r333.npy"], every=7, fs=1000 / 3)
    starts = [p.start_s for p in result.predictions]
    ends = [p.end_s for p in result.predictions]
    assert starts[1:] == ends[:-1] and starts[0] == 0


@pytest.mark.parametrize("kind", ["wfdb", "ishne"])
def test_long_records_are_read_a_few_minutes_at_a_time(predictor, tmp_path, monkeypatch, kind):
    sig = long_ecg(65)
    if kind == "wfdb":
        path = write_wfdb(tmp_path / "holter", sig)
    else:
        path = write_ishne(tmp_path / "holter.ecg", sig, rate=100)
    whole = predictor.predict_paths([path], every=10)
    reads = []
    real = ecgcnn.predict.read_recording

    def spy(*args, **kwargs):
        reads.append(kwargs.get("segment", args[5] if len(args) > 5 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(ecgcnn.predict, "read_recording", spy)
    monkeypatch.setattr(ecgcnn.predict, "TIMELINE_CHUNK_S", 30.0)
    chunked = predictor.predict_paths([path], every=10)
    assert reads == [(0, 30), (30, 60), (60, 65)]
    assert [p.start_s for p in chunked.predictions] == [p.start_s for p in whole.predictions]
    for a, b in zip(chunked.predictions, whole.predictions, strict=True):
        np.testing.assert_allclose(probs(a), probs(b), atol=1e-6)


def test_arrays_without_a_header_are_read_whole_and_cut(predictor, tmp_path):
    sig = long_ecg(30)
    np.save(tmp_path / "holter.npy", sig)
    result = predictor.predict_paths([tmp_path / "holter.npy"], fs=100, every=10)
    assert [p.start_s for p in result.predictions] == [0, 10, 20]
    np.testing.assert_allclose(
        probs(result.predictions[1]), probs(predictor.predict(sig[1000:2000], fs=100)), atol=1e-6
    )


def test_bad_every_and_unreadable_records_are_one_line_errors(predictor, tmp_path):
    with pytest.raises(EcgcnnError, match=r"--every 2: a number of seconds, at least the model's "
                       r"window \(2.5 s\)"):  # fmt: skip
        predictor.predict_paths([tmp_path], every=2)
    for every in (float("inf"), float("nan")):
        with pytest.raises(EcgcnnError, match="a number of seconds"):
            predictor.predict_paths([tmp_path], every=every)
    (tmp_path / "bad.hea").write_text("bad 12 100 6500\n")
    result = predictor.predict_paths([tmp_path / "bad"], every=10)
    assert result.predictions == [] and len(result.failures) == 1
    write_wfdb(tmp_path / "short", long_ecg(20))
    result = predictor.predict_paths([tmp_path / "short"], every=10, segment=(0.0, 30.0))
    [failure] = result.failures
    assert "ends after the recording (20 s)" in failure.problem


def test_cli_every_writes_one_row_per_part(served_checkpoint, tmp_path, ecgcnn_here):
    write_wfdb(tmp_path / "holter", long_ecg(30))
    proc = ecgcnn_here("predict", "--checkpoint", served_checkpoint, tmp_path / "holter",
                       "--every", "10", "--format", "csv", "--out", tmp_path / "t.csv")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(tmp_path / "t.csv")
    assert list(df.columns[:3]) == ["record", "start_s", "end_s"]
    assert df["start_s"].tolist() == [0, 10, 20] and df["end_s"].tolist() == [10, 20, 30]
    proc = ecgcnn_here("predict", "--checkpoint", served_checkpoint, tmp_path / "holter",
                       "--every", "10", "--format", "json")  # fmt: skip
    out = json.loads(proc.stdout)
    assert [p["start_s"] for p in out["predictions"]] == [0, 10, 20]
    proc = ecgcnn_here("predict", "--checkpoint", served_checkpoint, tmp_path / "holter",
                       "--every", "10")  # fmt: skip
    assert "10-20 s" in proc.stdout
    assert "predicted 3 part(s) of 1 record(s)" in proc.stderr


def test_explain_draws_the_segment_asked_for_and_names_it(tmp_path, monkeypatch):
    """A Holter's episode found with --every is explained with --segment: only it is read."""
    from ecgcnn.explain import explain_record
    from test_explain import PNG, fake_checkpoint

    sig = long_ecg(60)
    path = write_ishne(tmp_path / "holter.ecg", sig, rate=100)
    reads = []
    real = ecgcnn.recording.read_ishne

    def spy(*args, **kwargs):
        reads.append(args[3] if len(args) > 3 else kwargs.get("segment"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ecgcnn.recording, "read_ishne", spy)
    ckpt = fake_checkpoint(tmp_path / "c.pt", "cnn1d")  # 10 s at 100 Hz
    [result] = explain_record(ckpt, tmp_path / "o", record=path, top=1, segment=(20.0, 30.0))
    assert reads == [(20.0, 30.0)]
    assert (
        result.paths[0].name.startswith("holter-20-30s_")
        and result.paths[0].read_bytes()[:8] == PNG
    )
    [whole] = explain_record(ckpt, tmp_path / "o", record=path, class_name=result.class_name)
    assert whole.paths[0].name.startswith(f"holter_{result.class_name}")
    assert whole.probability != pytest.approx(result.probability, abs=1e-6)
    with pytest.raises(EcgcnnError, match="--segment needs --record"):
        explain_record(ckpt, tmp_path / "o", data_root=tmp_path, ecg_id=1, segment=(0.0, 10.0))


def test_plot_draws_one_timeline_per_record_with_its_failed_parts(predictor, tmp_path):
    from PIL import Image

    from ecgcnn.timeline import plot_timelines

    sig = long_ecg(40)
    sig[1000:2000, 7] = 0.0  # V2 off for 10 s: that part failed
    write_wfdb(tmp_path / "holter", sig)
    np.save(tmp_path / "other.npy", long_ecg(20, seed=5))
    result = predictor.predict_paths([tmp_path / "holter", tmp_path / "other.npy"], fs=100,
                                     every=10)  # fmt: skip
    paths = plot_timelines(result, tmp_path / "plots")
    assert [p.name for p in paths] == ["holter_timeline.png", "other_timeline.png"]
    for p in paths:
        with Image.open(p) as image:
            assert image.format == "PNG" and image.width > 800
    with pytest.raises(EcgcnnError, match="a timeline needs --every"):
        plot_timelines(predictor.predict_paths([tmp_path / "holter"]), tmp_path / "plots")


def test_cli_plot_writes_the_timelines_and_says_where(served_checkpoint, tmp_path, ecgcnn_here):
    write_wfdb(tmp_path / "holter", long_ecg(30))
    proc = ecgcnn_here("predict", "--checkpoint", served_checkpoint, tmp_path / "holter",
                       "--every", "10", "--plot", tmp_path / "plots")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "plots" / "holter_timeline.png").is_file()
    proc = ecgcnn_here("predict", "--checkpoint", served_checkpoint, tmp_path / "holter",
                       "--plot", tmp_path / "plots")  # fmt: skip
    assert (
        proc.returncode == 1 and "error: --plot draws a timeline: it needs --every" in proc.stderr
    )


@pytest.mark.parametrize("every", [None, 10])
def test_an_unexpected_error_in_one_file_fails_that_file_alone(
    predictor, tmp_path, monkeypatch, every
):
    """A decoder's bug (any exception, not a RecordError) costs that record, with or without
    --every, and the records after it are still predicted."""
    write_wfdb(tmp_path / "odd", long_ecg(20))
    write_wfdb(tmp_path / "good", long_ecg(20, seed=3))
    real = ecgcnn.predict.read_recording

    def read(path, *args, **kwargs):
        if "odd" in str(path):
            raise ZeroDivisionError("a decoder's bug")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ecgcnn.predict, "read_recording", read)
    result = predictor.predict_paths([tmp_path / "odd", tmp_path / "good"], every=every, workers=0)
    assert [(f.record, f.problem) for f in result.failures] == [
        (str(tmp_path / "odd"), "unexpected error reading it (ZeroDivisionError: a decoder's bug)")
    ]
    assert {p.record for p in result.predictions} == {str(tmp_path / "good")}


def test_a_missing_stretch_is_placed_in_the_recording_not_in_its_part(predictor, tmp_path):
    sig = long_ecg(60)
    sig[4200:4300, 3] = np.nan  # 42-43 s, lead aVR
    np.save(tmp_path / "x.npy", sig)
    result = predictor.predict_paths([tmp_path / "x.npy"], every=10, fs=100)
    [failure] = result.failures
    assert (failure.start_s, failure.end_s) == (40, 50)
    assert "first at 42.000 s, in lead AVR" in failure.problem
    result = predictor.predict_paths([tmp_path / "x.npy"], fs=100, segment=(40.0, 50.0))
    assert "first at 42.000 s" in result.failures[0].problem


def test_a_record_damaged_part_way_fails_from_there_in_its_place(predictor, tmp_path, monkeypatch):
    """A .dat cut short at 45 s of a header's 70 s: the parts before are scored, the rest is one
    failure with its start and end, after them in the table and grey in the timeline."""
    write_wfdb(tmp_path / "holter", long_ecg(70))
    dat = tmp_path / "holter.dat"
    dat.write_bytes(dat.read_bytes()[: 4500 * 12 * 2])  # 45 s of 12 leads, 2 bytes a sample
    monkeypatch.setattr(ecgcnn.predict, "TIMELINE_CHUNK_S", 20.0)
    result = predictor.predict_paths([tmp_path / "holter"], every=10)
    assert [p.start_s for p in result.predictions] == [0, 10, 20, 30]
    [failure] = result.failures
    assert (failure.record, failure.start_s, failure.end_s) == (str(tmp_path / "holter"), 40, 70)
    rows = list(csv.DictReader(io.StringIO(result.render("csv"))))
    assert [r["start_s"] for r in rows] == ["0", "10", "20", "30", "40"] and rows[-1]["error"]
    dat.unlink()  # no signal at all: the record's failure, not a part's
    [failure] = ecgcnn.predict.Predictor.predict_paths(
        predictor, [tmp_path / "holter"], every=10
    ).failures
    assert failure.start_s is None and "holter.dat" in failure.problem
