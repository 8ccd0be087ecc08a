"""ISHNE Holter files (Badilini 1998, the format of THEW's 12-lead 1000 Hz 24-hour recordings).

The writer builds files to the published layout: the magic number, the CRC-16-CCITT of the
header, the 512-byte fixed header, a variable block, then 16-bit samples interleaved by lead.
"""

import binascii
import struct
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ecgcnn.holter import read_ishne
from ecgcnn.recording import find_recordings, read_recording, record_kind
from ecgcnn.records import LEADS
from ecgcnn.synthetic import synthesize_ecg
from test_serve import wait_ready
from test_waveforms import one_line_error

FS = 500
NV_PER_BIT = 2500  # THEW's 12-lead Holters: 2.5 µV a step
# The 12 leads in the model's order, as ISHNE lead specification codes 5 (I) ... 16 (V6).
CODES = dict(zip(LEADS, range(5, 17), strict=True))
# The fixed header (512 bytes from byte 10): sizes and offsets, version, patient, dates, start
# time, leads, their codes, quality and resolution, pacemaker, recorder, rate, free text.
HEADER = "<iiiih40s40s20shh3h3h3h3hh12h12h12hh40sh80s80s88s"
ECG_OFFSET = 522


def ecg(seconds=10.0, seed=0):
    return synthesize_ecg(["NORM"], fs=FS, duration_s=seconds, rng=np.random.default_rng(seed))


def write_ishne(path, signal_mv, rate=FS, lead_codes=tuple(CODES.values()),
                resolution_nv=NV_PER_BIT, var_block=b"", magic=b"ISHNE1.0"):  # fmt: skip
    """An ISHNE Holter file of ``signal_mv`` (samples, leads), one lead code per column."""
    n, leads = signal_mv.shape
    pad = [-9] * (12 - leads)  # absent
    resolutions = [resolution_nv] * leads if np.isscalar(resolution_nv) else list(resolution_nv)
    fixed = struct.pack(
        HEADER, len(var_block), n, ECG_OFFSET, ECG_OFFSET + len(var_block), 1,
        b"Test", b"Holter", b"P-001", 1, 1, 12, 3, 1960, 1, 6, 2024, 2, 6, 2024, 8, 30, 0,
        leads, *lead_codes, *pad, *[1] * leads, *pad, *resolutions, *[0] * (12 - leads),
        0, b"digital", rate, b"", b"", b"",
    )  # fmt: skip
    samples = np.round(signal_mv * 1e6 / np.asarray(resolutions)).astype("<i2")
    crc = binascii.crc_hqx(fixed + var_block, 0xFFFF)
    Path(path).write_bytes(magic + struct.pack("<H", crc) + fixed + var_block + samples.tobytes())
    return Path(path)


def lsb(resolution_nv=NV_PER_BIT):
    """Half a step in mV (rounding) and a little for float32."""
    return resolution_nv / 1e6 / 2 + 1e-5


def patch(path, offset, fmt, *values):
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(bytes(raw))


# --- round trips -----------------------------------------------------------------------------------


def test_a_12_lead_holter_reads_back_within_one_step(tmp_path):
    sig = ecg(seed=1)
    path = write_ishne(tmp_path / "holter.ecg", sig, var_block=b"THEW 12-lead, 500 Hz")
    assert record_kind(path) == "ishne"
    rec = read_recording(path)
    assert rec.fs == FS and rec.leads == LEADS and rec.signal.shape == sig.shape
    assert np.abs(rec.signal - sig).max() < lsb() and rec.warnings == ()


def test_the_reader_gives_float32_millivolts_the_rate_and_lead_names(tmp_path):
    sig = ecg(seed=2)[:, :3]
    path = write_ishne(tmp_path / "h.ishne", sig, rate=1000, lead_codes=(11, 15, 8),
                       resolution_nv=(1000, 2500, 5000))  # fmt: skip
    signal, rate, names, units = read_ishne(path, "h", [], None)
    assert signal.dtype == np.float32 and signal.shape == sig.shape
    assert rate == 1000.0 and names == ["V1", "V5", "aVR"] and units == ["mV"] * 3
    for k, res in enumerate((1000, 2500, 5000)):
        assert np.abs(signal[:, k] - sig[:, k]).max() < lsb(res)


def test_leads_stored_in_another_order_come_back_in_the_model_s(tmp_path):
    sig = ecg(seed=3)
    order = [*LEADS[6:], *LEADS[:6]]  # V1-V6 first, then the limb leads
    stored = sig[:, [LEADS.index(lead) for lead in order]]
    path = write_ishne(tmp_path / "chest-first.ecg", stored, lead_codes=[CODES[x] for x in order])
    rec = read_recording(path)
    assert rec.leads == LEADS and np.abs(rec.signal - sig).max() < lsb()


def test_eight_leads_get_the_four_limb_leads_derived(tmp_path):
    sig = ecg(seed=4)
    eight = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    stored = sig[:, [LEADS.index(lead) for lead in eight]]
    path = write_ishne(tmp_path / "eight.ecg", stored, lead_codes=[CODES[x] for x in eight])
    rec = read_recording(path)
    assert np.abs(rec.signal - sig).max() < 3 * lsb()
    assert rec.warnings == ("lead(s) III, AVR, AVL, AVF derived from I and II",)


# --- a segment is all that is read -----------------------------------------------------------------


def test_a_segment_is_cut_at_read_time_exact_at_its_boundaries(tmp_path, monkeypatch):
    sig = ecg(seconds=60.0, seed=5)
    path = write_ishne(tmp_path / "long.ecg", sig)
    counts = []
    fromfile = np.fromfile

    def counting(*args, **kwargs):
        out = fromfile(*args, **kwargs)
        counts.append(out.size)
        return out

    monkeypatch.setattr(np, "fromfile", counting)
    rec = read_recording(path, segment=(20.0, 30.0))
    assert counts == [10 * FS * 12]  # 10 s of 12 leads: the other 50 s are never read
    want = sig[20 * FS : 30 * FS]
    assert rec.signal.shape == want.shape and np.abs(rec.signal - want).max() < lsb()
    assert np.abs(rec.signal[[0, -1]] - want[[0, -1]]).max() < lsb()  # first and last sample
    tail = read_recording(path, segment=(55.0, None))
    assert np.abs(tail.signal - sig[55 * FS :]).max() < lsb()
    with pytest.raises(Exception, match="ends after the recording"):
        read_recording(path, segment=(50.0, 70.0))
    odd = write_ishne(tmp_path / "odd.ecg", sig[:5001])  # an end half a sample past the last
    assert read_recording(odd, segment=(9.0, 5001.5 / FS)).signal.shape == (501, 12)


def test_missing_samples_outside_the_segment_do_not_matter(tmp_path):
    sig = ecg(seconds=20.0, seed=6)
    path = write_ishne(tmp_path / "gap.ecg", sig)
    frame = 12 * 2
    raw = bytearray(path.read_bytes())
    start = ECG_OFFSET + 15 * FS * frame  # 15 s on: lead V1 lost for 1 s
    for k in range(FS):
        struct.pack_into("<h", raw, start + k * frame + 2 * LEADS.index("V1"), -32768)
    path.write_bytes(bytes(raw))
    rec = read_recording(path, segment=(0.0, 10.0))
    assert np.abs(rec.signal - sig[: 10 * FS]).max() < lsb()
    one_line_error(path, r"500 sample\(s\) marked missing \(-32768\), the first in lead V1 at 15 s")


# --- not a 12-lead ECG, and bad input --------------------------------------------------------------


def test_a_3_lead_bipolar_holter_is_not_a_12_lead_ecg(tmp_path):
    path = write_ishne(tmp_path / "3lead.ecg", ecg(seed=7)[:, :3], lead_codes=(1, 1, 1))
    message = one_line_error(path, "not a 12-lead ECG")
    assert "bipolar" in message
    with pytest.raises(Exception, match="not a 12-lead ECG"):
        read_recording(path, allow_missing_leads=True)


def test_ecg_files_of_other_vendors_and_annotation_files_are_refused(tmp_path):
    other = tmp_path / "vendor.ecg"
    other.write_bytes(b"MORTARA\0" + bytes(600))
    one_line_error(other, r"not an ISHNE Holter file \(it does not start with 'ISHNE1.0'")
    ann = write_ishne(tmp_path / "holter.ann.ecg", ecg(seed=8), magic=b"ANN  1.0")
    one_line_error(ann, "an ISHNE annotation file")
    short = tmp_path / "short.ecg"
    short.write_bytes(b"ISHNE1.0" + bytes(100))
    one_line_error(short, "ISHNE header cut short: 108 bytes, the header needs 522")


def test_truncated_files_say_how_many_bytes_they_hold_and_need(tmp_path):
    path = write_ishne(tmp_path / "cut.ecg", ecg(seed=9))
    full = path.read_bytes()
    path.write_bytes(full[:-1000])
    one_line_error(
        path, rf"holds {len(full) - 1000} bytes, its header needs {len(full)} \(truncated\?\)"
    )


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "problem"),
    [
        (156, "<h", 0, "lead count 0: expected 1 to 12"),
        (156, "<h", 13, "lead count 13: expected 1 to 12"),
        (272, "<h", 0, "sampling rate 0 Hz"),
        (272, "<h", -1000, "sampling rate -1000 Hz"),
        (206 + 2 * 4, "<h", 0, r"amplitude resolution 0 nV of lead 5 \(aVL\)"),
        (10, "<i", -4, "variable block of -4 bytes"),
        (18, "<i", 600, "variable block at byte 600: expected 522"),
        (22, "<i", 10**9, "ECG block at byte 1000000000: .*file of"),
        (14, "<i", -1, "-1 samples per lead"),
    ],
)
def test_bad_header_fields_are_one_line_errors(tmp_path, offset, fmt, value, problem):
    path = write_ishne(tmp_path / "bad.ecg", ecg(seed=10))
    patch(path, offset, fmt, value)
    one_line_error(path, problem)


def test_a_crc_mismatch_is_a_warning(tmp_path):
    sig = ecg(seed=11)
    path = write_ishne(tmp_path / "crc.ecg", sig)
    patch(path, 28, "<4s", b"Jane")  # the first name changed after the CRC was written
    rec = read_recording(path)
    assert np.abs(rec.signal - sig).max() < lsb()
    assert len(rec.warnings) == 1 and rec.warnings[0].startswith("ISHNE header CRC mismatch")


def test_directories_find_ishne_files_and_pass_over_other_ecg_files(tmp_path):
    sig = ecg(seed=12)
    (tmp_path / "thew").mkdir()
    holters = [write_ishne(tmp_path / "thew" / "a.ecg", sig), write_ishne(tmp_path / "B.ECG", sig),
               write_ishne(tmp_path / "c.ishne", sig)]  # fmt: skip
    write_ishne(tmp_path / "thew" / "a.ann", sig, magic=b"ANN  1.0")
    write_ishne(tmp_path / "annotations.ecg", sig, magic=b"ANN  1.0")
    (tmp_path / "vendor.ecg").write_bytes(b"\x00\x01 another vendor's ECG" * 20)
    found, errors = find_recordings([tmp_path])
    assert sorted(found) == sorted(holters) and errors == []
    empty = tmp_path / "none"
    empty.mkdir()
    _, errors = find_recordings([empty])
    assert "ISHNE .ecg" in errors[0].problem


# --- explaining, prediction and serving -----------------------------------------------------------


def test_explain_draws_an_ishne_holter_named_without_its_suffix(tmp_path):
    from ecgcnn.explain import explain_record
    from test_explain import PNG, fake_checkpoint

    path = write_ishne(tmp_path / "holter.ecg", ecg(seed=14))  # 500 Hz, for a 100 Hz model
    results = explain_record(fake_checkpoint(tmp_path / "c.pt", "cnn1d"), tmp_path / "o",
                             record=path, top=1)  # fmt: skip
    paths = [p for r in results for p in r.paths]
    assert len(paths) == 1 and paths[0].read_bytes()[:8] == PNG
    assert paths[0].name.startswith("holter_")


@pytest.mark.slow
def test_an_ishne_holter_predicts_like_its_array_from_a_file_a_segment_and_an_upload(
    served_checkpoint, tmp_path
):
    from ecgcnn import Predictor
    from ecgcnn.serve import MiB, Settings, create_app

    predictor = Predictor.from_checkpoint(served_checkpoint)

    def probs(prediction):
        return np.array(list(prediction.probabilities.values()))

    sig = ecg(seconds=30.0, seed=13)
    path = write_ishne(tmp_path / "holter.ecg", sig)
    whole = probs(predictor.predict(sig, fs=FS))
    assert np.abs(probs(predictor.predict_record(path)) - whole).max() < 0.02
    part = probs(predictor.predict(sig[5 * FS : 15 * FS], fs=FS))
    got = probs(predictor.predict_record(path, segment=(5.0, 15.0)))
    assert np.abs(got - part).max() < 0.02
    result = predictor.predict_paths([tmp_path], segment=(5.0, 15.0))
    assert not result.failures and len(result.predictions) == 1
    app = create_app(Settings(str(served_checkpoint), max_body_bytes=4 * MiB))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        r = client.post("/v1/predict", files=[("files", (path.name, path.read_bytes()))])
        assert r.status_code == 200, r.text
        assert r.json()["probabilities"] == pytest.approx(
            predictor.predict_record(path).probabilities, abs=1e-6
        )


def test_a_huge_variable_block_is_not_read_for_the_crc(tmp_path, monkeypatch):
    """A review's finding: a sparse file declaring a 2 GiB variable block took 17 s and 4.4 GB for a
    5 ms segment, the block read (twice over) for the header CRC. Past 1 MiB it is not checked."""
    sig = ecg(seconds=10.0, seed=31)
    path = write_ishne(tmp_path / "big.ecg", sig, var_block=b"x" * (2 << 20))
    rec = read_recording(path, segment=(1.0, 3.0))
    assert rec.signal.shape[0] == 2 * FS
    assert any("CRC not checked" in w for w in rec.warnings), rec.warnings
    small = read_recording(write_ishne(tmp_path / "small.ecg", sig, var_block=b"note"))
    assert small.warnings == ()
