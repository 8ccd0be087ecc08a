"""Fuzzing the readers: random and mutated WFDB records, metadata CSVs and recordings.

Whatever the input, a reader returns a valid result or raises the project's own error
(:class:`~ecgcnn.errors.EcgcnnError`, RecordError included), never another exception. Each test
keeps to about a hundred examples; failures found once stay as explicit ``@example`` cases.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ecgcnn.errors import EcgcnnError
from ecgcnn.records import LEADS, load_database, read_record
from ecgcnn.synthetic import SCP_STATEMENTS_CSV, synthesize_ecg

# database=None: nothing written into the working tree; examples are drawn afresh every run.
# ECGCNN_FUZZ_EXAMPLES=5000 makes a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("ECGCNN_FUZZ_EXAMPLES", "80")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values that break parsers: empty, signs, NaN/inf, overflow, odd units and formats, brackets,
# quotes, separators, NUL, non-ASCII, deep nesting.
NASTY = [
    "", "0", "-1", "1", "0.5", "nan", "NaN", "inf", "-inf", "1e308", "1e400", "99999999999",
    "4294967296", "-9223372036854775809", "abc", "/", "(", ")", "{", "}", "[", "]", "'", '"', ",",
    ";", "#", "\x00", "µV", "16", "212", "80", "8", "311", "0(0)/mV", "1000.0(0)/uV", "mV",
    "{}", "{[]: 1}", "{'NORM': 100.0}", "{'NORM': 'x'}", "{1: 2}", "((((1))))", "(" * 200,
    "[" * 2000, "\n", "\r", "\t", "I", "V7", "12", "0/0",
]  # fmt: skip


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """``text`` after one to four edits: a token replaced by a nasty value, characters inserted,
    a span deleted, a line dropped, duplicated or swapped, or the end cut off."""
    edits = st.sampled_from(["token", "insert", "delete", "drop", "dup", "swap", "truncate"])
    for edit in draw(st.lists(edits, min_size=1, max_size=4)):
        if edit == "token":
            spans = [m.span() for m in re.finditer(r"[^\s,]+", text)]
            if spans:
                i, j = spans[draw(st.integers(0, len(spans) - 1))]
                text = text[:i] + draw(st.sampled_from(NASTY) | st.text(max_size=8)) + text[j:]
        elif edit == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(st.text(min_size=1, max_size=8)) + text[i:]
        elif edit in ("delete", "truncate"):
            i = draw(st.integers(0, len(text)))
            j = len(text) if edit == "truncate" else draw(st.integers(i, min(len(text), i + 20)))
            text = text[:i] + text[j:]
        else:
            lines = text.split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            if edit == "drop":
                del lines[k]
            elif edit == "dup":
                lines.insert(k, lines[k])
            else:
                m = draw(st.integers(0, len(lines) - 1))
                lines[k], lines[m] = lines[m], lines[k]
            text = "\n".join(lines)
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` cut short, with bytes flipped, with bytes appended, or replaced by random bytes."""
    edit = draw(st.sampled_from(["truncate", "flip", "append", "random"]))
    if edit == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if edit == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    if edit == "random":
        return draw(st.binary(max_size=512))
    out = bytearray(data)
    for i in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=16)):
        out[i] ^= draw(st.integers(1, 255))
    return bytes(out)


def _base_record() -> tuple[str, bytes]:
    """A valid 12-lead WFDB record as PTB-XL stores it: header text and 16-bit signal bytes."""
    ecg = synthesize_ecg(["NORM"], fs=100, duration_s=10.0, rng=np.random.default_rng(0))
    digital = np.round(ecg * 1000).astype("<i2")
    lines = [f"{RECORD} 12 100 {len(digital)}"] + [
        f"{RECORD}.dat 16 1000.0(0)/mV 16 0 {digital[0, k]} 0 0 {lead}"
        for k, lead in enumerate(LEADS)
    ]
    return "\n".join(lines) + "\n", digital.tobytes()


RECORD = "00001_lr"
HEADER, SIGNAL = _base_record()
# The first rows of a ptbxl_database.csv (extra columns included, as in the real file).
DATABASE_CSV = """\
ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr,filename_hr
1,15709.0,56.0,1,"{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}",3,records100/00000/00001_lr,records500/00000/00001_hr
2,13243.0,19.0,0,"{'NORM': 80.0, 'SBRAD': 0.0}",2,records100/00000/00002_lr,records500/00000/00002_hr
3,20372.0,37.0,1,"{'NORM': 100.0, 'SR': 0.0}",5,records100/00000/00003_lr,records500/00000/00003_hr
"""


def _with_cell(column: str, value: str) -> str:
    """DATABASE_CSV with ``column`` of the first row replaced by ``value`` (verbatim)."""
    header, first, *rest = DATABASE_CSV.split("\n")
    fields = re.findall(r'"[^"]*"|[^,]+', first)
    fields[header.split(",").index(column)] = value
    return "\n".join([header, ",".join(fields), *rest])


# --- WFDB records -----------------------------------------------------------------------------


def check_read_record(header: str | bytes, signal: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hea = Path(tmp) / f"{RECORD}.hea"
        if isinstance(header, bytes):
            hea.write_bytes(header)
        else:
            hea.write_text(header, encoding="utf-8", errors="surrogatepass")
        (Path(tmp) / f"{RECORD}.dat").write_bytes(signal)
        try:
            values, fs = read_record(Path(tmp) / RECORD)
        except EcgcnnError:
            return
    assert values.dtype == np.float32 and values.ndim == 2 and values.shape[1] == len(LEADS)
    assert np.isfinite(values).all() and fs > 0


def test_the_unmutated_inputs_are_valid(tmp_path: Path):
    """The fuzzing starts from inputs that read: mutations explore the edges of the valid."""
    (tmp_path / f"{RECORD}.hea").write_text(HEADER)
    (tmp_path / f"{RECORD}.dat").write_bytes(SIGNAL)
    values, fs = read_record(tmp_path / RECORD)
    assert values.shape == (1000, 12) and fs == 100
    (tmp_path / "ptbxl_database.csv").write_text(DATABASE_CSV)
    (tmp_path / "scp_statements.csv").write_text(SCP_STATEMENTS_CSV)
    assert list(load_database(tmp_path).records.index) == [1, 2, 3]
    assert _with_cell("ecg_id", "7").startswith(DATABASE_CSV.split("\n")[0] + "\n7,15709.0,")


@FUZZ
@given(
    header=mutated_text(HEADER) | st.just(HEADER), signal=mutated_bytes(SIGNAL) | st.just(SIGNAL)
)
@example(header=HEADER.replace(f"{RECORD} 12 ", f"{RECORD} 0 ", 1), signal=SIGNAL)  # no signals
def test_read_record_on_mutated_headers_and_signals(header: str, signal: bytes):
    check_read_record(header, signal)


@FUZZ
@given(header=st.text(max_size=300) | st.binary(max_size=300), signal=st.binary(max_size=300))
def test_read_record_on_random_files(header: str | bytes, signal: bytes):
    check_read_record(header, signal)


# --- the metadata CSVs ------------------------------------------------------------------------


def check_load_database(database: str | bytes, statements: str = SCP_STATEMENTS_CSV) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if isinstance(database, bytes):
            (root / "ptbxl_database.csv").write_bytes(database)
        else:
            (root / "ptbxl_database.csv").write_text(
                database, encoding="utf-8", errors="surrogatepass"
            )
        (root / "scp_statements.csv").write_text(
            statements, encoding="utf-8", errors="surrogatepass"
        )
        # a RuntimeWarning means a value was silently cast into garbage (inf -> int64...)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            try:
                db = load_database(root)
            except EcgcnnError:
                return
    records = db.records
    assert records.index.is_unique and records.index.dtype == np.int64
    assert all(isinstance(codes, dict) for codes in records["scp_codes"])
    assert (np.abs(records.index) <= 2**53).all()  # whole numbers as written, not cast garbage
    for col in ("patient_id", "strat_fold"):
        assert records[col].dtype == np.int64 and (records[col].abs() <= 2**53).all()


@FUZZ
@given(text=mutated_text(DATABASE_CSV))
@example(text=_with_cell("scp_codes", '"{[]: 1}"'))  # TypeError from literal_eval
@example(text=_with_cell("scp_codes", '"' + "[" * 2000 + '"'))  # nesting too deep
@example(text=_with_cell("scp_codes", "-" * 100_000 + "1"))  # MemoryError from literal_eval
@example(text=_with_cell("ecg_id", "inf"))  # would be cast to a garbage int64
@example(text=_with_cell("patient_id", "1e300"))
@example(text=_with_cell("strat_fold", " "))  # a blank cell in a column of strings
def test_load_database_on_mutated_csv(text: str):
    check_load_database(text)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_load_database_on_random_bytes(raw: bytes):
    check_load_database(raw)


@FUZZ
@given(statements=mutated_text(SCP_STATEMENTS_CSV))
@example(
    statements=SCP_STATEMENTS_CSV.replace("NDT,non-diagnostic T abnormalities,1.0", "NDT,x,inf")
)
def test_load_database_on_mutated_statements(statements: str):
    check_load_database(DATABASE_CSV, statements)


# --- recordings from the wild (ecgcnn.recording) ----------------------------------------------

needs_recording = pytest.mark.skipif(
    importlib.util.find_spec("ecgcnn.recording") is None, reason="ecgcnn.recording not present"
)


def _csv_recording(rows: int = 30) -> str:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.5, size=(rows, len(LEADS)))
    body = "\n".join(",".join(f"{v:.4f}" for v in row) for row in values)
    return ",".join(["time", *LEADS]) + "\n" + body + "\n"


def check_recording(read) -> None:  # type: ignore[no-untyped-def]
    from ecgcnn.recording import Recording

    try:
        rec = read().validate()
    except EcgcnnError:
        return
    assert isinstance(rec, Recording)
    assert rec.signal.dtype == np.float32 and rec.signal.shape == (rec.signal.shape[0], 12)
    assert np.isfinite(rec.signal).all() and rec.fs > 0 and rec.signal.shape[0] > 0


@needs_recording
@FUZZ
@given(text=mutated_text(_csv_recording()) | st.text(max_size=300))
@example(text="t\nt")  # a time column only
def test_recording_csv_reader(text: str):
    from ecgcnn.recording import read_recording

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ecg.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check_recording(lambda: read_recording(path, fs=100))


LEAD_NAMES = st.sampled_from([*LEADS, "aVR", "avl", "Lead V2", "C3", "MLII", "ECG1", "", "I"])


@needs_recording
@FUZZ
@given(
    signal=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int16, np.int32]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=14),
        elements={"allow_nan": True, "allow_infinity": True},
    )
    | hnp.arrays(np.float64, st.tuples(st.integers(0, 40), st.just(12))),
    fs=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 1000) | st.just("100"),
    names=st.none() | st.lists(LEAD_NAMES, max_size=14),
    units=st.sampled_from(["mV", "uV", "V", "furlong", ""]),
    allow_missing=st.booleans(),
)
def test_recording_validation(signal, fs, names, units, allow_missing):  # type: ignore[no-untyped-def]
    from ecgcnn.recording import conform

    check_recording(
        lambda: conform(signal, fs, names, "fuzz", units=units, allow_missing_leads=allow_missing)
    )


def _device_exports() -> dict[str, bytes]:
    """A 2.5 s DICOM waveform, aECG, MUSE, Philips (XLI), Mortara, SCP-ECG (Huffman and plain)
    export, an MFER and an ISHNE Holter file of one synthetic ECG, as bytes."""
    from test_device_formats import write_mfer, write_mortara, write_philips, write_scp
    from test_ishne import write_ishne
    from test_waveforms import write_aecg, write_dicom, write_muse

    sig = synthesize_ecg(["NORM"], fs=500, duration_s=2.5, rng=np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        writers = {"ecg.dcm": write_dicom, "aecg.xml": write_aecg, "muse.xml": write_muse,
                   "philips.xml": write_philips, "eli.xml": write_mortara, "huffman.scp": write_scp,
                   "plain.scp": lambda path, sig: write_scp(path, sig, huffman=False),
                   "ecg.mwf": write_mfer, "holter.ecg": write_ishne}  # fmt: skip
        return {name: write(Path(tmp) / name, sig).read_bytes() for name, write in writers.items()}


DEVICE_FILES = ["ecg.dcm", "aecg.xml", "muse.xml", "philips.xml", "eli.xml", "huffman.scp",
                "plain.scp", "ecg.mwf", "holter.ecg"]  # fmt: skip


@needs_recording
@FUZZ
@given(data=st.data(), name=st.sampled_from(DEVICE_FILES))
def test_device_export_readers_on_damaged_files(data: st.DataObject, name: str):
    from ecgcnn.recording import read_recording

    raw = bytearray(_DEVICE_EXPORTS.setdefault("files", _device_exports())[name])
    for _ in range(data.draw(st.integers(1, 6))):  # overwrite a few bytes anywhere ...
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i : i + 4] = data.draw(st.binary(min_size=1, max_size=4))
    raw = raw[: data.draw(st.integers(0, len(raw)))]  # ... and maybe cut the end off
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about what it repairs
        path = Path(tmp) / name
        path.write_bytes(bytes(raw))
        check_recording(lambda: read_recording(path))


_DEVICE_EXPORTS: dict[str, dict[str, bytes]] = {}
