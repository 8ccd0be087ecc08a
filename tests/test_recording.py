"""Reading recordings from the wild: every format, lead names, units, resampling and every bad input."""

import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb

from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.recording import (
    canonical_lead,
    conform,
    find_recordings,
    parse_segment,
    read_recording,
    remove_baseline,
    remove_baseline_records,
    resample,
)
from ecgcnn.records import LEADS, read_record
from ecgcnn.synthetic import synthesize_ecg


def ecg(fs=100, seconds=10.0, seed=0, statements=("NORM",)):
    return synthesize_ecg(
        list(statements), fs=fs, duration_s=seconds, rng=np.random.default_rng(seed)
    )


def write_wfdb(path, signal, names=LEADS, fs=100, units="mV", fmt="16"):
    """A WFDB record as wfdb.wrsamp writes it (gain 1000 per mV, or 1 per µV)."""
    gain = 1000.0 if units in ("mV", "\u043c\u0412") else 1.0  # mV, or the Cyrillic мВ
    wfdb.wrsamp(
        path.name, fs=fs, units=[units] * len(names), sig_name=list(names),
        p_signal=np.asarray(signal, dtype=np.float64), fmt=[fmt] * len(names),
        adc_gain=[gain] * len(names), baseline=[0] * len(names), write_dir=str(path.parent),
    )  # fmt: skip
    return path


def write_cinc_mat(path, signal, names=LEADS, fs=500, matlab="4"):
    """A PhysioNet/CinC-challenge record: MATLAB v4 'val' (leads x samples, int16) + a .hea.

    The v4 header of a variable named 'val' is 24 bytes, hence the format '16+24' (byte offset).
    ``matlab`` "5" or "5z" (compressed, as MATLAB's own save writes) re-saves the same 'val' in a
    later MATLAB format, "4d" as v4 doubles, the header unchanged, as a user's tools do.
    """
    digital = np.round(np.asarray(signal).T * 1000).astype(np.int16)
    val = digital.astype(np.float64) if matlab == "4d" else digital  # a v4 matrix of doubles
    scipy.io.savemat(path.with_suffix(".mat"), {"val": val}, format=matlab[0],
                     do_compression=matlab == "5z")  # fmt: skip
    lines = [f"{path.name} {len(names)} {fs} {digital.shape[1]}"]
    lines += [f"{path.name}.mat 16+24 1000/mV 16 0 {digital[i, 0]} 0 0 {lead}"
              for i, lead in enumerate(names)]  # fmt: skip
    path.with_suffix(".hea").write_text("\n".join(lines) + "\n")
    return path


def write_edf(path, signal, names=LEADS, fs=100, unit="mV", extra=()):
    """A minimal EDF file (one-second data records, 16-bit, 1 µV per step in mV); ``extra``:
    (label, samples per second) channels of zeros after the leads (pacing, respiration)."""

    def field(value, width):
        return str(value).ljust(width)[:width].encode("ascii")

    n_rec = signal.shape[0] // fs
    scale = 1000.0 if unit == "mV" else 1.0
    digital = np.round(signal[: n_rec * fs] * scale).astype("<i2")
    channels = [(n, fs, digital[:, i]) for i, n in enumerate(names)]
    channels += [(label, rate, np.zeros(n_rec * rate, "<i2")) for label, rate in extra]
    n_sig = len(channels)
    phys_max = 32767 / scale
    header = b"".join([
        field("0", 8), field("X X X X", 80), field("Startdate 01-JAN-2020 X X X", 80),
        field("01.01.20", 8), field("00.00.00", 8), field(256 * (n_sig + 1), 8), field("", 44),
        field(n_rec, 8), field(1, 8), field(n_sig, 4),
    ])  # fmt: skip
    per_signal = [
        [field(c[0], 16) for c in channels], [field("AgAgCl", 80)] * n_sig, [field(unit, 8)] * n_sig,
        [field(f"{-phys_max - 1 / scale:.3f}", 8)] * n_sig, [field(f"{phys_max:.3f}", 8)] * n_sig,
        [field(-32768, 8)] * n_sig, [field(32767, 8)] * n_sig, [field("", 80)] * n_sig,
        [field(c[1], 8) for c in channels], [field("", 32)] * n_sig,
    ]  # fmt: skip
    header += b"".join(b"".join(block) for block in per_signal)
    body = b"".join(
        c[2][k * c[1] : (k + 1) * c[1]].tobytes() for k in range(n_rec) for c in channels
    )
    path.write_bytes(header + body)
    return path


# --- lead names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "lead"),
    [("aVR", "AVR"), ("avr", "AVR"), ("Lead aVR", "AVR"), ("VR", "AVR"), ("aVL", "AVL"),
     ("AVF", "AVF"), ("I", "I"), ("DII", "II"), ("lead_III", "III"), ("v1", "V1"),
     ("C4", "V4"), (" V6 ", "V6"), ("ECG I", "I"), ("EKG V1", "V1"), ("ECG aVR", "AVR"),
     ("ECG_II", "II"), ("D1", "I"), ("D3", "III"), ("I (mV)", "I"), ("V2 [uV]", "V2"),
     ("'aVF'", "AVF")],
)  # fmt: skip
def test_lead_aliases(label, lead):
    assert canonical_lead(label) == lead


@pytest.mark.parametrize("label", ["MLII", "ML5", "-aVR", "ECG1", "V7", "X", "1", "ECG", "D4"])
def test_non_standard_leads_have_no_canonical_name(label):
    assert canonical_lead(label) is None


def test_aliased_shuffled_leads_come_back_in_model_order(tmp_path):
    sig = ecg()
    order = np.random.default_rng(1).permutation(12)
    aliases = {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF", "II": "DII", "V3": "v3", "V5": "C5"}
    names = [aliases.get(LEADS[i], LEADS[i]) for i in order]
    write_wfdb(tmp_path / "shuffled", sig[:, order], names)
    write_wfdb(tmp_path / "canonical", sig)
    got = read_recording(tmp_path / "shuffled")
    want = read_recording(tmp_path / "canonical")
    assert got.leads == LEADS and got.filled_leads == () and got.warnings == ()
    np.testing.assert_array_equal(got.signal, want.signal)
    np.testing.assert_allclose(got.signal, sig, atol=6e-4)  # 16-bit at 1 µV per step


def test_errors_name_at_most_a_few_of_a_file_s_many_channels():
    """A file claiming a million channels once gave a 10 MB error line (found on MFER)."""
    from ecgcnn.recording import conform

    names = [f"Ch{k}" for k in range(1, 501)]
    with pytest.raises(RecordError) as err:
        conform(np.zeros((10, 500)), 500, names, "many")
    assert "has Ch1, Ch2" in str(err.value) and "and 484 more" in str(err.value)
    assert len(str(err.value)) < 400
    with pytest.raises(RecordError, match="appear more than once") as err:
        conform(np.zeros((10, 500)), 500, ["I"] * 500, "dup")
    assert len(str(err.value)) < 400
    wide = conform(np.ones((10, 60)), 500, [*LEADS, *names[:48]], "wide")
    assert wide.warnings == ("ignored channel(s) " + ", ".join(names[:16]) + " and 32 more",)


def test_missing_lead_is_an_error_unless_zero_filling_is_allowed(tmp_path):
    sig = ecg()
    keep = [i for i, lead in enumerate(LEADS) if lead not in ("V4", "V2")]
    write_wfdb(tmp_path / "ten", sig[:, keep], [LEADS[i] for i in keep])
    with pytest.raises(RecordError, match=r"ten: missing lead\(s\) V2, V4; has I, II"):
        read_recording(tmp_path / "ten")
    rec = read_recording(tmp_path / "ten", allow_missing_leads=True)
    assert rec.filled_leads == ("V2", "V4")
    assert any("V2, V4 missing: filled with zeros" in w for w in rec.warnings)
    assert not rec.signal[:, [7, 9]].any()
    np.testing.assert_allclose(rec.signal[:, keep], sig[:, keep], atol=6e-4)
    rec.validate()  # filled leads are flat by construction, and allowed to be


def test_holter_mlii_is_rejected_as_not_12_lead_even_with_zero_filling(tmp_path):
    sig = ecg()[:, [1, 6]]
    write_wfdb(tmp_path / "mitdb", sig, ["MLII", "V1"], fs=100)
    for allow in (False, True):
        with pytest.raises(RecordError, match="mitdb: not a 12-lead ECG: MLII is a modified"):
            read_recording(tmp_path / "mitdb", allow_missing_leads=allow)


def test_extra_channels_are_ignored_with_a_warning(tmp_path):
    sig = ecg()
    extra = np.column_stack([sig, sig[:, :1]])
    write_wfdb(tmp_path / "fifteen", extra, [*LEADS, "vx"])
    rec = read_recording(tmp_path / "fifteen")
    assert rec.warnings == ("ignored channel(s) vx",)
    np.testing.assert_allclose(rec.signal, sig, atol=6e-4)


# --- formats -------------------------------------------------------------------------------------


def test_cinc_mat_reads_like_the_dat(tmp_path):
    sig = np.round(ecg(fs=500), 3)  # on the 1 µV grid: both writers store the same integers
    write_wfdb(tmp_path / "dat", sig, fs=500)
    write_cinc_mat(tmp_path / "mat", sig, fs=500)
    a, b = read_recording(tmp_path / "dat.hea"), read_recording(tmp_path / "mat.mat")
    assert a.fs == b.fs == 500 and b.name == str(tmp_path / "mat")
    np.testing.assert_array_equal(a.signal, b.signal)


@pytest.mark.parametrize("matlab", ["5", "5z", "4d"])
def test_cinc_mat_saved_in_a_later_matlab_format_reads_like_the_v4(tmp_path, matlab):
    """The header's '16+24' says MATLAB v4; a 'val' re-saved as v5/v7 is read for what it is."""
    sig = np.round(ecg(fs=500), 3)
    write_cinc_mat(tmp_path / "v4", sig, fs=500)
    write_cinc_mat(tmp_path / "later", sig, fs=500, matlab=matlab)
    assert (tmp_path / "later.mat").read_bytes()[:10] == b"MATLAB 5.0" or matlab == "4d"
    a, b = read_recording(tmp_path / "v4.mat"), read_recording(tmp_path / "later.mat")
    assert b.fs == 500 and b.leads == a.leads and b.warnings == a.warnings
    np.testing.assert_array_equal(a.signal, b.signal)
    a, b = (read_recording(tmp_path / f"{n}.hea", segment=(2, 4.5)) for n in ("v4", "later"))
    np.testing.assert_array_equal(a.signal, b.signal)
    assert b.signal.shape == (1250, 12)
    sig[100:103, 4] = -32.768  # WFDB's missing value in format 16: NaN from both
    a, b = (read_recording(write_cinc_mat(tmp_path / n, sig, fs=500, matlab=m))
            for n, m in (("v4", "4"), ("later", matlab)))  # fmt: skip
    np.testing.assert_array_equal(a.signal, b.signal)
    assert np.isnan(b.signal[100:103, 4]).all() and np.isnan(b.signal).sum() == 3


def test_cinc_mat_files_that_do_not_hold_the_header_s_val_are_one_line_errors(tmp_path):
    sig = ecg(fs=500)
    write_cinc_mat(tmp_path / "r", sig, fs=500, matlab="5")
    hea = (tmp_path / "r.hea").read_text()
    scipy.io.savemat(tmp_path / "r.mat", {"ecg": np.zeros((12, 5000), np.int16)})
    with pytest.raises(RecordError, match=r"r.mat holds no 'val' matrix \(has ecg\)"):
        read_recording(tmp_path / "r.hea")
    scipy.io.savemat(tmp_path / "r.mat", {"val": np.zeros((12, 4000), np.int16)})
    with pytest.raises(
        RecordError, match="r.mat holds 4000 samples per lead, the header says 5000"
    ):
        read_recording(tmp_path / "r.hea")
    scipy.io.savemat(tmp_path / "r.mat", {"val": np.zeros((8, 5000), np.int16)})
    with pytest.raises(RecordError, match=r"r.mat holds 8 x 5000 values, the header 12 leads"):
        read_recording(tmp_path / "r.hea")
    (tmp_path / "r.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(128) + b"\x89HDF\r\n" * 100)
    with pytest.raises(RecordError, match=r"MATLAB v7.3 \(HDF5\)"):
        read_recording(tmp_path / "r.hea")
    (tmp_path / "r.mat").write_bytes(b"MATLAB 5.0 MAT-file".ljust(128) + b"\x00" * 50)
    with pytest.raises(RecordError, match="r.mat: not a readable MATLAB file"):
        read_recording(tmp_path / "r.hea")
    assert hea == (tmp_path / "r.hea").read_text()


def _mat_v5_bomb(path, inflated):
    """A MATLAB v5 file whose compressed 'val' (int16, 12 x 5000 as its header says) inflates to
    ``inflated`` bytes of zeros: a few hundred KiB on disk."""
    import struct
    import zlib

    def element(kind, data):
        return struct.pack("<II", kind, len(data)) + data + b"\0" * (-len(data) % 8)

    head = (element(6, struct.pack("<II", 10, 0)) + element(5, struct.pack("<ii", 12, 5000))
            + element(1, b"val") + struct.pack("<II", 3, inflated))  # fmt: skip
    packer = zlib.compressobj(9)
    parts = [packer.compress(struct.pack("<II", 14, len(head) + inflated) + head)]
    parts += [packer.compress(b"\0" * (1 << 24)) for _ in range(inflated >> 24)]
    parts.append(packer.flush())
    body = b"".join(parts)
    header = b"MATLAB 5.0 MAT-file".ljust(116) + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    path.write_bytes(header + struct.pack("<II", 15, len(body)) + body)


def test_cinc_mat_that_inflates_beyond_its_matrix_or_holds_no_numbers_is_refused_unread(tmp_path):
    import tracemalloc

    write_cinc_mat(tmp_path / "r", ecg(fs=500), fs=500, matlab="5z")
    _mat_v5_bomb(tmp_path / "r.mat", 1 << 28)  # 256 MiB of zeros behind a 12 x 5000 header
    tracemalloc.start()
    with pytest.raises(RecordError, match="r.mat inflates to more than"):
        read_recording(tmp_path / "r.hea")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB while refusing it"
    scipy.io.savemat(tmp_path / "r.mat", {"val": np.array([[np.zeros((12, 5000))]], dtype=object)})
    with pytest.raises(RecordError, match="'val' is cell, not numbers"):
        read_recording(tmp_path / "r.hea")


def test_cinc_v4_matrix_stored_transposed_is_not_read_as_format_16(tmp_path):
    sig = ecg(fs=500)
    write_cinc_mat(tmp_path / "r", sig, fs=500)
    digital = np.round(sig * 1000).astype(np.int16)  # samples x leads: rows are not the leads
    scipy.io.savemat(tmp_path / "r.mat", {"val": digital}, format="4")
    with pytest.raises(RecordError, match="holds 5000 x 12 values, the header 12 leads"):
        read_recording(tmp_path / "r.hea")


def test_format_212_and_microvolt_headers(tmp_path):
    sig = np.round(ecg(), 3)
    write_wfdb(tmp_path / "f212", sig, fmt="212")
    np.testing.assert_allclose(read_recording(tmp_path / "f212").signal, sig, atol=6e-4)
    write_wfdb(tmp_path / "uv", np.round(sig * 1000), units="uV")
    rec = read_recording(tmp_path / "uv")
    np.testing.assert_allclose(rec.signal, sig, atol=6e-4)
    np.testing.assert_allclose(read_record(tmp_path / "uv")[0], rec.signal)  # same unit handling


@pytest.mark.parametrize("rate", [200, 25])
def test_edf_leads_beside_a_channel_at_another_rate(tmp_path, rate):
    """A pacing channel sampled faster (or respiration slower) than the leads is ignored, said."""
    sig = ecg()
    rec = read_recording(write_edf(tmp_path / "rec.edf", sig, extra=[("Pace", rate)]))
    assert rec.fs == 100 and rec.signal.shape == (1000, 12)
    np.testing.assert_allclose(rec.signal, sig, atol=6e-4)
    assert rec.warnings == (f"ignored channel(s) Pace (sampled at {rate} Hz, the leads at 100 Hz)",)


def test_wfdb_leads_of_adc_gain_0_are_uncalibrated_and_said_so(tmp_path):
    sig = np.round(ecg(), 3)
    write_wfdb(tmp_path / "r", sig)
    hea = tmp_path / "r.hea"
    lines = hea.read_text().splitlines()
    for i in (1, 2):  # WFDB: a gain of 0 means uncalibrated (wfdb then reads 200 units per mV)
        parts = lines[i].split()
        parts[2] = "0/mV"
        lines[i] = " ".join(parts)
    hea.write_text("\n".join(lines) + "\n")
    rec = read_recording(tmp_path / "r")
    assert rec.warnings == (
        "lead(s) I, II uncalibrated (ADC gain 0 in the header): read at 200 units per mV, "
        "wfdb's default",
    )


def test_wfdb_header_without_lead_names_says_so(tmp_path):
    write_wfdb(tmp_path / "r", ecg())
    hea = tmp_path / "r.hea"
    lines = hea.read_text().splitlines()
    hea.write_text(
        "\n".join([lines[0], *(" ".join(line.split()[:2]) for line in lines[1:])]) + "\n"
    )
    with pytest.raises(RecordError, match=r"r: the header names no leads \(the description at"):
        read_recording(tmp_path / "r")


def test_wfdb_record_of_a_non_ascii_name_says_why_its_signal_file_is_not_found(tmp_path):
    write_wfdb(tmp_path / "réc_ü", ecg())  # wfdb's header parser drops the accented letters
    with pytest.raises(
        RecordError, match=r"not found \(wfdb reads the header's file names in ASCII"
    ):
        read_recording(tmp_path / "réc_ü")


def test_edf(tmp_path):
    sig = ecg()
    rec = read_recording(write_edf(tmp_path / "rec.edf", sig))
    assert rec.fs == 100 and rec.signal.shape == (1000, 12)
    np.testing.assert_allclose(rec.signal, sig, atol=6e-4)
    uv = read_recording(write_edf(tmp_path / "uv.edf", sig * 1000, unit="uV"))
    np.testing.assert_allclose(uv.signal, sig, atol=6e-4)
    # an EDF written by another writer (wfdb's, which appends one padding block)
    from wfdb.io.convert.edf import wfdb_to_edf

    write_wfdb(tmp_path / "w", sig)
    wfdb_to_edf(str(tmp_path / "w"), output_filename=str(tmp_path / "w.edf"))
    theirs = read_recording(tmp_path / "w.edf")
    np.testing.assert_allclose(
        theirs.signal[:1000], read_recording(tmp_path / "w").signal, atol=1e-6
    )
    raw = (tmp_path / "rec.edf").read_bytes()
    (tmp_path / "cut.edf").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(RecordError, match="cut.edf: EDF file holds 9 of the 10 data records"):
        read_recording(tmp_path / "cut.edf")
    (tmp_path / "junk.edf").write_bytes(b"hello")
    with pytest.raises(RecordError, match="junk.edf: not an EDF file"):
        read_recording(tmp_path / "junk.edf")


def test_npy_either_orientation_and_units(tmp_path):
    sig = ecg()
    np.save(tmp_path / "tl.npy", sig)
    np.save(tmp_path / "lt.npy", sig.T)
    np.save(tmp_path / "uv.npy", sig * 1000)
    for name, units in (("tl", "mV"), ("lt", "mV"), ("uv", "uV")):
        rec = read_recording(tmp_path / f"{name}.npy", fs=100, units=units)
        np.testing.assert_allclose(rec.signal, sig, rtol=1e-5, atol=1e-6)
    # microvolts taken as millivolts: no ECG is hundreds of mV, so this is an error, not labels
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "uv.npy", fs=100)
    one_line(exc, str(tmp_path / "uv.npy"), "is the signal in microvolts? (--units uV for .npy")
    # volts taken as millivolts: every lead looks flat; the error says why it may be
    np.save(tmp_path / "volts.npy", sig / 1000)
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "volts.npy", fs=100).validate()
    one_line(exc, str(tmp_path / "volts.npy"), "every lead is flat")
    assert "(--units V" in str(exc.value)
    # a signal in millivolts read as microvolts: the hint names the units given, not volts
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "tl.npy", fs=100, units="uV").validate()
    one_line(exc, str(tmp_path / "tl.npy"), "every lead is flat")
    assert "read in uV" in str(exc.value) and "--units V" not in str(exc.value)
    rec = read_recording(tmp_path / "volts.npy", fs=100, units="V")
    np.testing.assert_allclose(rec.signal, sig, rtol=1e-5, atol=1e-6)
    # one artefact spike beyond any ECG amplitude is a warning only
    spiky = sig.copy()
    spiky[500, 3] = 80.0
    np.save(tmp_path / "spike.npy", spiky)
    rec = read_recording(tmp_path / "spike.npy", fs=100)
    assert any("amplitudes up to 80 mV" in w for w in rec.warnings)


def test_wfdb_header_without_a_rate_needs_one(tmp_path):
    # WFDB readers assume 250 Hz when a header gives no rate; a 500 Hz record would be read as 20 s
    write_wfdb(tmp_path / "norate", ecg(fs=500), fs=500)
    hea = tmp_path / "norate.hea"
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join(["norate 12", *lines[1:]]) + "\n")
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "norate")
    one_line(exc, str(tmp_path / "norate"), "the header gives no sampling rate")
    assert "(--fs HZ)" in str(exc.value)
    rec = read_recording(tmp_path / "norate", fs=500)
    assert rec.fs == 500 and rec.duration_s == 10 and rec.warnings == ()


@pytest.mark.parametrize("micro", ["\u00b5V", "\u03bcV"])  # the micro sign and the Greek mu
def test_a_wfdb_header_in_microvolts_with_a_micro_sign(tmp_path, micro):
    """wfdb reads a header as ASCII and drops the µ: 'µV' would arrive as volts, a millionfold error.
    Both the recording reader and the PTB-XL record reader take the unit as written."""
    sig = ecg(seed=8)
    write_wfdb(tmp_path / "micro", sig * 1000, units=micro)
    assert micro.encode() in (tmp_path / "micro.hea").read_bytes()
    rec = read_recording(tmp_path / "micro")
    np.testing.assert_allclose(rec.signal, sig, atol=6e-4)
    signal, fs = read_record(tmp_path / "micro")
    assert fs == 100
    np.testing.assert_allclose(signal, sig, atol=6e-4)


@pytest.mark.parametrize(("unit", "scale"), [("\u043c\u0412", 1.0), ("\u043c\u043a\u0412", 1000.0)])
def test_a_wfdb_header_in_cyrillic_millivolts_or_microvolts(tmp_path, unit, scale):
    """Russian-language carts write мВ / мкВ; wfdb keeps only the ASCII, which is no unit at all."""
    sig = ecg(seed=9)
    write_wfdb(tmp_path / "ru", sig * scale, units=unit)
    rec = read_recording(tmp_path / "ru")
    np.testing.assert_allclose(rec.signal, sig, atol=6e-4)
    assert not any("unknown unit" in w for w in rec.warnings)
    signal, _ = read_record(tmp_path / "ru")
    np.testing.assert_allclose(signal, sig, atol=6e-4)


def test_a_wfdb_header_saved_in_windows_1251_keeps_its_cyrillic_unit(tmp_path):
    """Russian Windows software saves text in Windows-1251, not UTF-8: мкВ must not become
    Latin-1's 'ìêÂ', an unknown unit read as mV (a thousandfold error)."""
    sig = ecg(seed=10)
    write_wfdb(tmp_path / "cp", sig * 1000, units="\u043c\u043a\u0412")
    hea = tmp_path / "cp.hea"
    hea.write_bytes(hea.read_bytes().decode("utf-8").encode("cp1251"))
    rec = read_recording(tmp_path / "cp")
    np.testing.assert_allclose(rec.signal, sig, atol=6e-4)
    signal, _ = read_record(tmp_path / "cp")
    np.testing.assert_allclose(signal, sig, atol=6e-4)


def test_millivolts_read_as_volts_are_told_to_check_the_units_given(tmp_path):
    """--units V on a signal in mV: the hint points at the V that was asked for, not at microvolts."""
    np.save(tmp_path / "mv.npy", ecg())
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "mv.npy", fs=100, units="V")
    one_line(exc, str(tmp_path / "mv.npy"), "the samples were read in V (as --units")
    assert "microvolts" not in str(exc.value)


def test_header_units_win_over_the_units_option_with_a_warning(tmp_path):
    write_wfdb(tmp_path / "mv", ecg())
    rec = read_recording(tmp_path / "mv", units="uV")
    np.testing.assert_allclose(rec.signal, ecg(), atol=6e-4)
    assert any("the header gives the units: --units uV ignored" in w for w in rec.warnings)


def test_limb_leads_are_derived_from_two_of_them(tmp_path):
    # GE MUSE and others store I, II, V1-V6; III, aVR, aVL and aVF follow from Einthoven's and
    # Goldberger's equations, so they are computed, not zero-filled
    sig = ecg()
    eight = [LEADS.index(lead) for lead in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    write_wfdb(tmp_path / "eight", sig[:, eight], [LEADS[i] for i in eight])
    rec = read_recording(tmp_path / "eight")
    assert rec.leads == LEADS and rec.filled_leads == ()
    np.testing.assert_allclose(rec.signal, sig, atol=2e-3)
    assert rec.warnings == ("lead(s) III, AVR, AVL, AVF derived from I and II",)
    # any two of I, II, III will do
    no_ii = [i for i, lead in enumerate(LEADS) if lead not in ("II", "AVF")]
    rec = conform(sig[:, no_ii], 100, [LEADS[i] for i in no_ii], "no_ii")
    np.testing.assert_allclose(rec.signal, sig, atol=1e-5)
    assert rec.warnings == ("lead(s) II, AVF derived from I and III",)
    # one limb lead is not enough
    only_i = [i for i, lead in enumerate(LEADS) if lead not in ("II", "III", "AVR", "AVL", "AVF")]
    with pytest.raises(RecordError, match=r"missing lead\(s\) II, III, AVR, AVL, AVF"):
        conform(sig[:, only_i], 100, [LEADS[i] for i in only_i], "only_i")


def test_a_flat_lead_is_zero_filled_when_missing_leads_are_allowed():
    sig = ecg()
    sig[:, 11] = 0.2
    with pytest.raises(RecordError, match=r"flat lead\(s\) V6"):
        conform(sig, 100, None, "flat").validate()
    rec = conform(sig, 100, None, "flat", allow_missing_leads=True).validate()
    assert rec.filled_leads == ("V6",) and not rec.signal[:, 11].any()
    assert any("flat lead(s) V6: filled with zeros" in w for w in rec.warnings)


def test_csv_time_column_gives_the_rate(tmp_path):
    sig = ecg(fs=500, seed=4)
    df = pd.DataFrame(sig, columns=list(LEADS))
    df.insert(0, "Time (s)", np.arange(len(df)) / 500)
    df.to_csv(tmp_path / "seconds.csv", index=False)
    rec = read_recording(tmp_path / "seconds.csv")  # no --fs needed: the time column says 500 Hz
    assert rec.fs == 500 and rec.warnings == ()
    np.testing.assert_allclose(rec.signal, sig, rtol=1e-6, atol=1e-6)
    df["Time (s)"] = np.round(np.arange(len(df)) * 1000 / 500, 3)
    df.rename(columns={"Time (s)": "ms"}).to_csv(tmp_path / "ms.csv", index=False)
    assert read_recording(tmp_path / "ms.csv").fs == 500
    rec = read_recording(tmp_path / "seconds.csv", fs=250)  # a contradicting --fs loses, loudly
    assert rec.fs == 500
    assert any("the time column says 500 Hz: --fs 250 ignored" in w for w in rec.warnings)
    # sample numbers are not time
    df.rename(columns={"Time (s)": "sample"}).assign(sample=np.arange(len(df))).to_csv(
        tmp_path / "samples.csv", index=False
    )
    with pytest.raises(RecordError, match="has no sampling rate"):
        read_recording(tmp_path / "samples.csv")


@pytest.mark.parametrize(
    ("time_unit", "clock"), [("seconds", False), ("hh:mm:ss.mmm", True), (None, True)]
)
def test_physionet_exported_csv(tmp_path, time_unit, clock):
    """What PhysioNet's tools export (rdsamp -c -H -v, LightWAVE): quoted names, then a units row
    (here microvolts); 'Elapsed time' in seconds or as m:ss.mmm, with or without that row."""
    sig = ecg(fs=500, seed=5)
    lines = ["'Elapsed time'," + ",".join(f"'{lead}'" for lead in LEADS)]
    lines += [f"'{time_unit}'," + ",".join(["'uV'"] * 12)] if time_unit else []
    scale = 1000 if time_unit else 1  # microvolts where the units row says so, else millivolts
    for k, row in enumerate(sig):
        time = f"'{k // 30000}:{k / 500 % 60:06.3f}'" if clock else f"{k / 500:.3f}"
        lines.append(time + "," + ",".join(f"{v * scale:.4f}" for v in row))
    (tmp_path / "export.csv").write_text("\n".join(lines) + "\n")
    rec = read_recording(tmp_path / "export.csv")
    assert rec.fs == 500 and rec.warnings == ()
    np.testing.assert_allclose(rec.signal, sig, atol=6e-5)


@pytest.mark.parametrize(
    ("fs", "form"),
    [(500, "s3"), (333.333, "s3"), (720, "s3"), (1024, "s3"), (720, "clock"), (1024, "clock"),
     (500, "s2"), (360, "s2"), (2000, "s3")],
)  # fmt: skip
def test_a_csv_time_column_with_a_gap_is_refused_not_read_at_a_blended_rate(tmp_path, fs, form):
    """A 0.5 s jump in the times made the end-to-end rate 476 Hz, silently: the gap is named, and
    --fs reads the file anyway, with a warning. Rounded times (to the millisecond, to hundredths
    of a second, or m:ss.mmm as PhysioNet exports them) are no gap, at any rate."""

    def write(path, times):
        def stamp(t: float) -> str:
            if form == "clock":
                return f"{int(t // 60)}:{t % 60:06.3f}"
            return f"{t:.{form[1]}f}"

        sig = ecg(fs=500, seed=7)[: len(times)]
        lines = ["time," + ",".join(LEADS)] + [
            stamp(t) + "," + ",".join(f"{v:.4f}" for v in row)
            for t, row in zip(times, sig, strict=True)
        ]
        path.write_text("\n".join(lines) + "\n")

    n = 5000
    times = np.arange(n) / fs
    write(tmp_path / "even.csv", times)
    if (fs, form) == (2000, "s3"):  # milliseconds over 2.5 s: 1999 Hz or 2000 Hz, no telling
        with pytest.raises(RecordError, match="has no sampling rate: give it"):
            read_recording(tmp_path / "even.csv")
        rec = read_recording(tmp_path / "even.csv", fs=fs)  # within what the times allow
        assert rec.fs == fs and not any("ignored" in w for w in rec.warnings)
    else:
        assert read_recording(tmp_path / "even.csv").fs == pytest.approx(fs, rel=2e-3)
    write(tmp_path / "gap.csv", times + np.where(np.arange(n) >= n // 2, 0.5, 0.0))
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "gap.csv")
    one_line(exc, str(tmp_path / "gap.csv"), "the time column is not evenly spaced")
    assert f"(after {n // 2} samples)" in str(exc.value)
    rec = read_recording(tmp_path / "gap.csv", fs=fs)  # the user's rate: read, with a warning
    assert rec.fs == fs and any("not evenly spaced" in w for w in rec.warnings)


@pytest.mark.parametrize("form", ["s1", "s2", "clock0", "g"])
def test_coarse_csv_times_never_give_a_wrong_rate(tmp_path, form):
    """Times in tenths of a second (or whole seconds, or %g) leave several whole rates possible
    for most record lengths: the rate is then asked for (--fs), never guessed (2514 samples in
    tenths once read as 503 Hz); a length the times do pin down gives the true rate."""

    def stamp(t: float) -> str:
        if form == "clock0":
            return f"{int(t // 3600)}:{int(t // 60) % 60:02d}:{int(round(t)) % 60:02d}"
        return f"{t:g}" if form == "g" else f"{t:.{form[1]}f}"

    for n in range(2500, 6001, 233):
        t = np.arange(n) / 500
        body = ["time,I,II"] + [f"{stamp(x)},0.{k % 7},0.{k % 5}" for k, x in enumerate(t)]
        (tmp_path / "c.csv").write_text("\n".join(body) + "\n")
        try:
            got = read_recording(tmp_path / "c.csv", allow_missing_leads=True).fs
        except RecordError as exc:
            assert "has no sampling rate" in str(exc), str(exc)
            continue
        assert got == 500, (form, n, got)
        rec = read_recording(tmp_path / "c.csv", fs=500, allow_missing_leads=True)
        assert rec.fs == 500


def test_csv_with_decimal_commas(tmp_path):
    sig = ecg(seed=6)
    body = ["; ".join(f"{v:.6f}".replace(".", ",") for v in row) for row in sig]
    (tmp_path / "bare.csv").write_text("\n".join(body) + "\n")
    (tmp_path / "named.csv").write_text("\n".join([";".join(LEADS), *body]) + "\n")
    for name in ("bare", "named"):
        rec = read_recording(tmp_path / f"{name}.csv", fs=100)
        np.testing.assert_allclose(rec.signal, sig, atol=1e-6)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_csv_with_decimal_commas_under_a_units_row(tmp_path, sep):
    """A European spreadsheet export with a units row: the decimal commas are in the third line."""
    sig = ecg(seed=7)
    body = [sep.join(f"{v * 1000:.3f}".replace(".", ",") for v in row) for row in sig]
    (tmp_path / "units.csv").write_text("\n".join([sep.join(LEADS), sep.join(["uV"] * 12), *body]))
    rec = read_recording(tmp_path / "units.csv", fs=100)
    np.testing.assert_allclose(rec.signal, sig, atol=1e-6)
    flat = [sep.join(["0"] * 12)] * 20  # a lead-in of whole numbers before the first decimal comma
    (tmp_path / "lead-in.csv").write_text("\n".join([sep.join(LEADS), *flat, *body]))
    rec = read_recording(tmp_path / "lead-in.csv", fs=100, units="uV")
    np.testing.assert_allclose(rec.signal[20:], sig, atol=1e-6)


def test_csv_with_header_aliases_time_column_and_semicolons(tmp_path):
    sig = ecg()
    order = np.random.default_rng(2).permutation(12)
    names = [{"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}.get(LEADS[i], LEADS[i]) for i in order]
    df = pd.DataFrame(sig[:, order], columns=names)
    df.insert(0, "time", np.arange(1000) / 100)
    df.to_csv(tmp_path / "comma.csv", index=False)
    df.to_csv(tmp_path / "semi.csv", index=False, sep=";")
    pd.DataFrame(sig).to_csv(tmp_path / "bare.csv", index=False, header=False)
    for name in ("comma", "semi", "bare"):
        rec = read_recording(tmp_path / f"{name}.csv", fs=100)
        assert rec.warnings == (), name
        np.testing.assert_allclose(rec.signal, sig, rtol=1e-6, atol=1e-6)


# --- resampling ----------------------------------------------------------------------------------


def test_resampling_500_to_100_hz_matches_the_decimated_original():
    # synthesize_ecg renders at 500 Hz and decimates (as PTB-XL's 100 Hz files were made), so
    # the same seed at 100 Hz is the 100 Hz original of the 500 Hz recording.
    hi, lo = ecg(fs=500, seed=3), ecg(fs=100, seed=3)
    out = resample(hi, 500, 100)
    assert out.shape == lo.shape and out.dtype == np.float32
    assert np.abs(out - lo).max() < 0.005  # mV; naive hi[::5] is off by ~0.08 mV in the QRS
    assert np.abs(hi[::5] - lo).max() > 0.02


def test_resampling_is_anti_aliased_and_handles_odd_rates():
    t = np.arange(5000) / 500
    tone = np.column_stack([np.sin(2 * np.pi * 70 * t)] * 12)  # above the 50 Hz Nyquist of 100 Hz
    out = resample(tone, 500, 100)
    assert np.abs(out[50:-50]).max() < 0.02  # plain decimation would alias it to a 30 Hz tone
    assert np.abs(tone[::5]).max() > 0.9
    slow = np.column_stack([np.sin(2 * np.pi * 5 * np.arange(2570) / 257)] * 12)
    out = resample(slow, 257, 100)  # INCART's rate
    assert out.shape == (1000, 12)
    want = np.sin(2 * np.pi * 5 * np.arange(1000) / 100)
    assert np.abs(out[20:-20, 0] - want[20:-20]).max() < 0.01


def test_remove_baseline_refuses_a_lead_major_array_instead_of_filtering_the_wrong_axis():
    x = ecg(seed=3) + np.linspace(-1, 1, 12)  # (1000, 12) mV, each lead its own offset
    want = remove_baseline_records(x.T[None].astype(np.float32), 100, "highpass")[0]
    np.testing.assert_allclose(remove_baseline(x, 100, "highpass").T, want, atol=1e-5)
    for how in ("keep", "median", "highpass"):
        with pytest.raises(EcgcnnError) as exc:
            remove_baseline(x.T, 100, how)  # (12, 1000): lead-major
        message = str(exc.value)
        assert "\n" not in message
        assert "expected a (samples, leads) array, got shape (12, 1000)" in message
        assert "transpose" in message and "signal.T" in message
    with pytest.raises(EcgcnnError, match=r"got shape \(1000,\) \(1-D\)"):
        remove_baseline(x[:, 0], 100, "median")
    with pytest.raises(EcgcnnError, match=r"got shape \(1, 12, 1000\).*remove_baseline_records"):
        remove_baseline(x.T[None], 100, "highpass")
    assert remove_baseline(x[:12], 100, "median").shape == (12, 12)  # square: samples first


# --- bad input: one line naming the record and the problem ---------------------------------------


def one_line(exc_info, record, pattern):
    message = str(exc_info.value)
    assert "\n" not in message
    assert message.startswith(f"{record}: "), message
    assert pattern in message, message


def test_nan_inf_and_flat_leads(tmp_path):
    sig = ecg()
    nan = sig.copy()
    nan[100:103, 7] = np.nan
    inf = sig.copy()
    inf[5, 0] = np.inf
    flat = sig.copy()
    flat[:, 9] = 0.3
    for name, arr, pattern in (("nan", nan, "3 NaN or infinite sample(s) (first at 1.000 s, in lead V2)"),
                               ("inf", inf, "1 NaN or infinite sample(s) (first at 0.050 s, in lead I)"),
                               ("flat", flat, "flat lead(s) V4 (peak to peak under 5 µV): disconnected electrode? "
                                "(--allow-missing-leads fills flat leads with zeros)")):  # fmt: skip
        np.save(tmp_path / f"{name}.npy", arr)
        with pytest.raises(RecordError) as exc:
            read_recording(tmp_path / f"{name}.npy", fs=100).validate()
        one_line(exc, str(tmp_path / f"{name}.npy"), pattern)


def test_wrong_lead_count_and_non_numeric_arrays(tmp_path):
    np.save(tmp_path / "eight.npy", ecg()[:, :8])
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "eight.npy", fs=100)
    one_line(
        exc, str(tmp_path / "eight.npy"), "wrong lead count: shape (1000, 8), expected 12 leads"
    )
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "obj.npy", fs=100)
    one_line(exc, str(tmp_path / "obj.npy"), "not a readable numeric .npy array")
    np.save(tmp_path / "text.npy", np.array([["a"] * 12] * 10))
    with pytest.raises(RecordError, match="not a numeric array"):
        read_recording(tmp_path / "text.npy", fs=100)
    with pytest.raises(RecordError, match="has no sampling rate"):
        read_recording(tmp_path / "eight.npy")


def test_npy_files_that_lie_or_are_not_npy_get_plain_errors(tmp_path):
    """A header promising 12 trillion samples is refused by the file's size, not by a failed 87 TiB
    allocation; a file that is not .npy is said to be so, without numpy's hint to unpickle it."""
    import struct

    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 12), }"
    header += " " * (118 - len(header)) + "\n"
    (tmp_path / "huge.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
        + ecg().astype("<f8").tobytes()
    )  # fmt: skip
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "huge.npy", fs=100)
    one_line(exc, str(tmp_path / "huge.npy"), "the header promises (1000000000000, 12) float64")
    (tmp_path / "hello.npy").write_text("hello world")
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "hello.npy", fs=100)
    one_line(exc, str(tmp_path / "hello.npy"), "not a NumPy .npy file")
    assert "allow_pickle" not in str(exc.value) and "unsafely" not in str(exc.value)


def test_non_numeric_csv(tmp_path):
    df = pd.DataFrame(ecg(), columns=list(LEADS)).astype(object)
    df.iloc[16, 7] = "1,2mV"
    df.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "text.csv", fs=100)
    one_line(exc, str(tmp_path / "text.csv"), "non-numeric value '1,2mV' in V2, line 18")
    df.iloc[16, 7] = ""
    df.to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(RecordError, match="empty cell in V2, line 18"):
        read_recording(tmp_path / "empty.csv", fs=100)
    (tmp_path / "ragged.csv").write_text("I,II\n1,2\n1,2,3\n")
    with pytest.raises(RecordError, match="not a readable CSV"):
        read_recording(tmp_path / "ragged.csv", fs=100)


def test_truncated_dat_missing_signal_file_and_missing_header(tmp_path):
    write_wfdb(tmp_path / "cut", ecg())
    dat = tmp_path / "cut.dat"
    dat.write_bytes(dat.read_bytes()[:10001])
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "cut")
    one_line(
        exc,
        str(tmp_path / "cut"),
        "signal file cut.dat has 10001 bytes, the header needs 24000 (truncated?)",
    )
    write_wfdb(tmp_path / "orphan", ecg())
    (tmp_path / "orphan.dat").unlink()
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "orphan.hea")
    one_line(exc, str(tmp_path / "orphan"), "signal file orphan.dat named in the header not found")
    write_cinc_mat(tmp_path / "lonely", ecg(fs=500))
    (tmp_path / "lonely.hea").unlink()
    with pytest.raises(RecordError, match="lonely: a .mat recording needs its WFDB header"):
        read_recording(tmp_path / "lonely.mat")
    with pytest.raises(RecordError, match="unsupported file type .txt"):
        read_recording(tmp_path / "notes.txt")


def test_duplicate_leads_and_bad_rates():
    sig = ecg()
    names = list(LEADS)
    names[3] = "avr"
    names[4] = "aVR"
    with pytest.raises(RecordError, match="AVR appear more than once"):
        conform(sig, 100, names, "dup")
    for fs in (0, -5, float("nan"), "fast", 5, 2e5):
        with pytest.raises(RecordError, match="sampling rate"):
            conform(sig, fs, None, "rate")


def test_segments(tmp_path):
    np.save(tmp_path / "long.npy", ecg(seconds=30))
    rec = read_recording(tmp_path / "long.npy", fs=100)
    part = rec.segment(5, 15)
    np.testing.assert_array_equal(part.signal, rec.signal[500:1500])
    assert rec.segment(None, 12.5).signal.shape[0] == 1250
    assert rec.segment(20, None).signal.shape[0] == 1000
    with pytest.raises(RecordError, match="ends after the recording"):
        rec.segment(25, 40)
    assert parse_segment("2:12") == (2.0, 12.0) and parse_segment("5:") == (5.0, None)
    assert parse_segment(None) is None
    for bad in ("5", "a:b", "10:5", "1:2:3"):
        with pytest.raises(EcgcnnError, match="--segment"):
            parse_segment(bad)


def test_a_wfdb_segment_reads_only_its_samples(tmp_path):
    sig = ecg(fs=500, seconds=60, seed=7)
    write_wfdb(tmp_path / "long", sig, fs=500)
    whole = read_recording(tmp_path / "long")
    part = read_recording(tmp_path / "long", segment=(5, 15))
    np.testing.assert_array_equal(part.signal, whole.segment(5, 15).signal)
    assert part.duration_s == 10
    with pytest.raises(RecordError, match=r"segment 50:70 s ends after the recording \(60 s\)"):
        read_recording(tmp_path / "long", segment=(50, 70))
    # proof that the rest is never read: cut the signal file after 20 s
    dat = tmp_path / "long.dat"
    dat.write_bytes(dat.read_bytes()[: 20 * 500 * 12 * 2])
    with pytest.raises(RecordError, match="truncated"):
        read_recording(tmp_path / "long")
    np.testing.assert_array_equal(
        read_recording(tmp_path / "long", segment=(5, 15)).signal, part.signal
    )
    # other formats are read whole and cut
    np.save(tmp_path / "long.npy", sig)
    npy = read_recording(tmp_path / "long.npy", fs=500, segment=(5, None))
    np.testing.assert_allclose(npy.signal, sig[2500:], atol=1e-6)


def test_find_recordings_follows_linked_folders_once_and_names_upper_case_headers(tmp_path):
    (tmp_path / "in").mkdir()
    write_wfdb(tmp_path / "in" / "rec1", ecg())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_wfdb(elsewhere / "rec2", ecg())
    (tmp_path / "in" / "linked").symlink_to(elsewhere)  # a folder linked in, as archives do
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")  # a cycle: walked once
    write_wfdb(tmp_path / "in" / "upper", ecg())
    (tmp_path / "in" / "upper.hea").rename(tmp_path / "in" / "UPPER.HEA")  # copied from FAT media
    write_wfdb(tmp_path / "in" / "twin", ecg())
    (tmp_path / "in" / "twin.HEA").write_bytes((tmp_path / "in" / "twin.hea").read_bytes())
    found, errors = find_recordings([tmp_path / "in"])  # twin.HEA beside twin.hea: no error
    assert found == [tmp_path / "in" / "linked" / "rec2.hea", tmp_path / "in" / "rec1.hea",
                     tmp_path / "in" / "twin.hea"]  # fmt: skip
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'in' / 'UPPER.HEA'}: WFDB headers are read as NAME.hea, in lower case: "
        "rename it UPPER.hea"
    ]
    with pytest.raises(RecordError, match=r"header UPPER.hea not found \(UPPER.HEA is there: "):
        read_recording(tmp_path / "in" / "UPPER.HEA")


def test_a_multi_segment_record_in_a_folder_is_one_record(tmp_path):
    sig = ecg(fs=500)
    for seg in ("rec_0001", "rec_0002"):
        write_wfdb(tmp_path / seg, sig, fs=500)
    layout = "".join(f"~ 0 1000/mV 16 0 0 0 0 {lead}\n" for lead in LEADS)
    (tmp_path / "rec_layout.hea").write_text("rec_layout 12 500 0\n" + layout)
    (tmp_path / "rec.hea").write_text(
        "rec/3 12 500 10000\nrec_layout 0\nrec_0001 5000\nrec_0002 5000\n"
    )
    assert find_recordings([tmp_path]) == ([tmp_path / "rec.hea"], [])
    rec = read_recording(tmp_path / "rec.hea")
    np.testing.assert_allclose(rec.signal, np.concatenate([sig, sig]), atol=6e-4)
    with pytest.raises(RecordError, match="the header says 0 samples"):
        read_recording(tmp_path / "rec_layout")  # named on its own: says what it is


def test_a_malformed_multi_segment_header_in_a_folder_is_one_failure_not_a_crash(tmp_path):
    """A header naming segments that are no file names (or random bytes whose first word has a '/')
    is the record's failure when read; the folder's other records are still found."""
    write_wfdb(tmp_path / "good", ecg())
    (tmp_path / "multi.hea").write_text("multi/2 12 500 10000\nsub/dir/seg1 5000\n/ 5000\n")
    found, errors = find_recordings([tmp_path])
    assert tmp_path / "good.hea" in found and not errors
    with pytest.raises(RecordError):
        read_recording(tmp_path / "multi.hea")


def test_a_path_that_does_not_exist_is_said_to_be_missing(tmp_path):
    with pytest.raises(RecordError, match="no such file, directory or WFDB record"):
        read_recording(tmp_path / "nope" / "x")
    (tmp_path / "zero.hea").write_text("")
    with pytest.raises(RecordError) as exc:
        read_recording(tmp_path / "zero")
    one_line(exc, str(tmp_path / "zero"), "the header is empty")


def test_find_recordings(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    write_wfdb(tmp_path / "a" / "b" / "rec1", ecg())
    write_wfdb(tmp_path / "rec2", ecg())
    np.save(tmp_path / "a" / "arr.npy", ecg())
    pd.DataFrame(ecg(), columns=list(LEADS)).to_csv(tmp_path / "a" / "t.csv", index=False)
    found, errors = find_recordings([tmp_path])
    assert found == [tmp_path / "a" / "b" / "rec1.hea", tmp_path / "rec2.hea"] and errors == []
    found, _ = find_recordings([tmp_path], arrays=True)
    assert len(found) == 4
    # a folder of arrays only, read without a rate: the error says what is there and what it needs
    (tmp_path / "arrays").mkdir()
    np.save(tmp_path / "arrays" / "one.npy", ecg())
    np.save(tmp_path / "arrays" / "two.npy", ecg())
    found, errors = find_recordings([tmp_path / "arrays"])
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'arrays'}: no recordings (.hea, .edf, DICOM, ECG .xml, .scp, .mwf, ISHNE .ecg) in this directory; 2 .npy/.csv file(s) "
        "need a sampling rate (--fs HZ)"
    ]
    # record names, .hea and .dat of one record are one record; a missing path is an error
    found, errors = find_recordings([tmp_path / "rec2", tmp_path / "rec2.hea", tmp_path / "rec2.dat",
                                     tmp_path / "nothing"])  # fmt: skip
    assert found == [tmp_path / "rec2"]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'nothing'}: no such file, directory or WFDB record"
    ]


def test_resample_records_is_resample_for_each_chosen_record_in_chunks():
    from ecgcnn.recording import ResampledRecords, resample, resample_records

    rng = np.random.default_rng(0)
    data = rng.normal(size=(7, 12, 5000)).astype(np.float32)
    rows = np.array([6, 0, 3])
    down = resample_records(data, 500, 100, rows, chunk=2)  # chunk boundary inside the rows
    assert down.shape == (3, 12, 1000) and down.dtype == np.float32
    for i, r in enumerate(rows):
        np.testing.assert_allclose(down[i], resample(data[r].T, 500, 100).T, atol=1e-6)
    up = resample_records(down, 100, 500)
    assert up.shape == (3, 12, 5000)
    lazy = ResampledRecords(data, 500, 100)  # what evaluate scores batch by batch
    np.testing.assert_array_equal(lazy[rows[:2]], down[:2])
    assert len(lazy) == 7
