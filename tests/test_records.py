import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.records import LEADS, load_database, read_record


def test_database_parses_and_ignores_extra_columns(synthetic_copy):
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df["report"] = "sinus rhythm"
    df["device"] = "CS-12"
    df.to_csv(csv, index=False)
    db = load_database(synthetic_copy)
    assert db.records.index.name == "ecg_id"
    assert "report" not in db.records.columns
    assert isinstance(db.records["scp_codes"].iloc[0], dict)
    assert db.records["patient_id"].dtype == np.int64


def test_missing_root_and_files(tmp_path):
    with pytest.raises(EcgcnnError, match="does not exist"):
        load_database(tmp_path / "nowhere")
    with pytest.raises(EcgcnnError, match="ptbxl_database.csv not found"):
        load_database(tmp_path)


def test_windows_paths_in_the_database_read_the_same(synthetic_copy):
    """A database CSV edited on Windows may name records as records100\\00000\\00001_lr."""
    expected = load_database(synthetic_copy)
    path = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(path)
    for column in ("filename_lr", "filename_hr"):
        df[column] = df[column].str.replace("/", "\\")
    df.to_csv(path, index=False)
    db = load_database(synthetic_copy)
    pd.testing.assert_frame_equal(db.records, expected.records, check_like=True)
    ecg_id = int(db.records.index[0])
    assert db.record_path(ecg_id, 100) == expected.record_path(ecg_id, 100)
    read_record(db.record_path(ecg_id, 100))


@pytest.mark.parametrize(
    ("sep", "decimal", "encoding"),
    [(";", ",", "utf-8"), (";", ".", "utf-8"), ("\t", ".", "utf-8"), ("\t", ",", "utf-8"),
     (";", ",", "cp1252")],
)  # fmt: skip
def test_a_database_saved_by_a_spreadsheet_reads_the_same(synthetic_copy, sep, decimal, encoding):
    """Excel in many locales saves CSV with ';' and decimal commas (in its own code page); tab-separated
    exports exist too. Separator, decimal mark and encoding are each recognised."""
    expected = load_database(synthetic_copy)
    for name, index in (("ptbxl_database.csv", None), ("scp_statements.csv", 0)):
        path = synthetic_copy / name
        df = pd.read_csv(path, index_col=index)
        df["weight"] = 70.5  # a decimal column
        df["nurse"] = "Schwester Jürgen"  # not ASCII: the encoding matters
        df.to_csv(path, index=index is not None, sep=sep, decimal=decimal, encoding=encoding)
    db = load_database(synthetic_copy)
    pd.testing.assert_frame_equal(db.records, expected.records, check_like=True)
    assert db.records["age"].dtype.kind in "if"  # still numbers, whatever the decimal mark
    pd.testing.assert_frame_equal(
        db.statements.drop(columns=["weight", "nurse"]), expected.statements, check_like=True
    )
    assert db.statements["weight"].iloc[0] == 70.5


def test_missing_required_column_is_named(synthetic_copy):
    csv = synthetic_copy / "ptbxl_database.csv"
    pd.read_csv(csv).drop(columns=["patient_id"]).to_csv(csv, index=False)
    with pytest.raises(EcgcnnError, match="missing required column.*patient_id"):
        load_database(synthetic_copy)


def test_scp_codes_are_never_evaluated(synthetic_copy, tmp_path):
    marker = tmp_path / "pwned"
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df.loc[3, "scp_codes"] = f"__import__('pathlib').Path('{marker}').touch()"
    df.to_csv(csv, index=False)
    with pytest.raises(EcgcnnError, match="ecg_id 4: scp_codes .* not a dict literal"):
        load_database(synthetic_copy)
    assert not marker.exists()


def test_non_numeric_fold_is_named_with_its_row(synthetic_copy):
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df["strat_fold"] = df["strat_fold"].astype(object)
    df.loc[2, "strat_fold"] = "ten"
    df.to_csv(csv, index=False)
    eid = int(df.loc[2, "ecg_id"])
    with pytest.raises(EcgcnnError) as exc:
        load_database(synthetic_copy)
    # named as every other row problem is, by its ecg_id, with the file's line for an editor
    assert f"line 4 (ecg_id {eid}): strat_fold must be a whole number or blank, not 'ten'" in str(
        exc.value
    )
    df.loc[2, "strat_fold"] = 3
    df["patient_id"] = df["patient_id"].astype(object)
    df.loc[4, "patient_id"] = "p7"
    df.to_csv(csv, index=False)
    with pytest.raises(
        EcgcnnError, match=r"line 6 \(ecg_id \d+\): patient_id must be a whole number, not 'p7'"
    ):
        load_database(synthetic_copy)


def write_record(path, signal, names, units="mV", fs=100):
    wfdb.wrsamp(
        path.name, fs=fs, units=[units] * len(names), sig_name=list(names), p_signal=signal,
        fmt=["16"] * len(names), adc_gain=[1000.0 if units == "mV" else 1.0] * len(names),
        baseline=[0] * len(names), write_dir=str(path.parent),
    )  # fmt: skip


def test_leads_are_matched_by_name_and_reordered(tmp_path):
    rng = np.random.default_rng(0)
    signal = np.round(rng.normal(size=(1000, 12)), 3)
    shuffled = [LEADS[i] for i in range(11, -1, -1)]
    write_record(tmp_path / "rec", signal[:, ::-1], [n.lower() for n in shuffled])
    out, fs = read_record(tmp_path / "rec")
    assert fs == 100 and out.shape == (1000, 12) and out.dtype == np.float32
    np.testing.assert_allclose(out, signal, atol=1e-3)


def test_microvolt_records_are_converted_to_millivolts(tmp_path):
    signal = np.round(np.random.default_rng(1).normal(scale=500, size=(500, 12)))
    write_record(tmp_path / "uv", signal, LEADS, units="uV")
    out, _ = read_record(tmp_path / "uv")
    np.testing.assert_allclose(out, signal / 1000, atol=1e-3)


def test_missing_lead_truncated_and_absent_records_are_record_errors(tmp_path):
    signal = np.zeros((1000, 11))
    write_record(tmp_path / "eleven", signal, LEADS[:11])
    with pytest.raises(RecordError, match="missing lead.*V6"):
        read_record(tmp_path / "eleven")
    write_record(tmp_path / "full", np.ones((1000, 12)), LEADS)
    dat = tmp_path / "full.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    with pytest.raises(RecordError, match="full: unreadable WFDB record"):
        read_record(tmp_path / "full")
    with pytest.raises(RecordError, match="absent: file not found"):
        read_record(tmp_path / "absent")


@pytest.mark.parametrize(
    ("column", "message"),
    [("scp_codes", "ecg_id 3: scp_codes is empty (expected a dict literal like {'NORM': 100.0})"),
     ("filename_lr", "ptbxl_database.csv: ecg_id 3 has no filename_lr (records at 100 Hz)")],
)  # fmt: skip
def test_a_blank_cell_is_named(synthetic_copy, column, message):
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df[column] = df[column].astype(object)
    df.loc[2, column] = None
    df.to_csv(csv, index=False)
    from ecgcnn.cache import load_signals

    with pytest.raises(EcgcnnError) as exc:
        load_signals(load_database(synthetic_copy), 100, progress=False)
    assert message in str(exc.value)


def test_statements_without_a_class_or_unknown_codes_are_warned_of(synthetic_copy, caplog):
    from ecgcnn.labels import make_labels

    st = synthetic_copy / "scp_statements.csv"
    statements = pd.read_csv(st, index_col=0)
    statements.loc["IMI", "diagnostic_class"] = None
    statements.to_csv(st)
    csv = synthetic_copy / "ptbxl_database.csv"
    df = pd.read_csv(csv)
    df.loc[0, "scp_codes"] = "{'XYZ': 100.0, 'NORM': 100.0}"
    df.to_csv(csv, index=False)
    with caplog.at_level("WARNING"):
        make_labels(load_database(synthetic_copy), "superdiagnostic")
    assert "scp_codes XYZ (1 record(s)) not in scp_statements.csv" in caplog.text
    assert "diagnostic statement(s) IMI have no diagnostic_class" in caplog.text
