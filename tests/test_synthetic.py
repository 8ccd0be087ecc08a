"""The synthetic PTB-XL writer: layout, metadata, determinism and the class signal it carries."""

from __future__ import annotations

import ast
import filecmp
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.signal import find_peaks, resample_poly

from ecgcnn.synthetic import LEADS, SCP_STATEMENTS_CSV, synthesize_ecg, write_synthetic_ptbxl

REAL_DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "ptbxl-dev"
DB_COLUMNS = [
    "ecg_id", "patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr", "filename_hr",
]  # fmt: skip
ST_COLUMNS = [
    "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass",
    "Statement Category", "SCP-ECG Statement Description", "AHA code", "aECG REFID",
    "CDISC Code", "DICOM Code",
]  # fmt: skip
RHYTHM = {"SR", "AFIB", "STACH", "SBRAD", "SARRH"}
HEA_SIGNAL = re.compile(r"^(\d{5}_[lh]r)\.dat 16 1000\.0\(0\)/mV 16 0 -?\d+ \d+ 0 (\S+)$")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default data set (150 patients, seed 0, 100 Hz)."""
    return write_synthetic_ptbxl(tmp_path_factory.mktemp("syn") / "ptbxl")


@pytest.fixture(scope="module")
def db(root: Path) -> pd.DataFrame:
    df = pd.read_csv(root / "ptbxl_database.csv")
    df["codes"] = df["scp_codes"].map(ast.literal_eval)
    return df


@pytest.fixture(scope="module")
def signals(root: Path, db: pd.DataFrame) -> dict[int, np.ndarray]:
    return {
        int(r.ecg_id): wfdb.rdsamp(str(root / r.filename_lr))[0] for r in db.itertuples(index=False)
    }


# --- layout ---------------------------------------------------------------------------------------


def test_tree_and_records(root: Path, db: pd.DataFrame) -> None:
    assert (root / "ptbxl_database.csv").is_file()
    assert (root / "scp_statements.csv").is_file()
    assert not (root / "records500").exists()
    assert len(db) == 300
    for r in db.itertuples(index=False):
        folder = f"{r.ecg_id // 1000 * 1000:05d}"
        assert r.filename_lr == f"records100/{folder}/{r.ecg_id:05d}_lr"
        assert r.filename_hr == f"records500/{folder}/{r.ecg_id:05d}_hr"
        signal, fields = wfdb.rdsamp(str(root / r.filename_lr))
        assert signal.shape == (1000, 12)
        assert fields["fs"] == 100
        assert fields["sig_name"] == list(LEADS)
        assert fields["units"] == ["mV"] * 12
        assert np.isfinite(signal).all()


def test_header_looks_like_ptbxl(root: Path) -> None:
    lines = (root / "records100" / "00000" / "00001_lr.hea").read_text().splitlines()
    assert lines[0] == "00001_lr 12 100 1000"
    assert len(lines) == 13
    for line, lead in zip(lines[1:], LEADS, strict=True):
        m = HEA_SIGNAL.match(line)
        assert m, line
        assert m.groups() == ("00001_lr", lead)
    assert (root / "records100" / "00000" / "00001_lr.dat").stat().st_size == 1000 * 12 * 2


def test_records_are_what_wfdb_wrsamp_writes(root: Path, tmp_path: Path) -> None:
    for name in ("00001_lr", "00150_lr", "00300_lr"):
        signal, fields = wfdb.rdsamp(str(root / "records100" / "00000" / name))
        wfdb.wrsamp(
            name, fs=100, units=["mV"] * 12, sig_name=fields["sig_name"], p_signal=signal,
            fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path),
        )  # fmt: skip
        for ext in ("hea", "dat"):
            assert filecmp.cmp(
                tmp_path / f"{name}.{ext}", root / "records100" / "00000" / f"{name}.{ext}", False
            ), f"{name}.{ext}"


def test_500hz_records(tmp_path: Path) -> None:
    both = write_synthetic_ptbxl(tmp_path / "both", n_patients=3, seed=5, rates=(100, 500))
    only = write_synthetic_ptbxl(tmp_path / "only", n_patients=3, seed=5)
    db = pd.read_csv(both / "ptbxl_database.csv")
    assert (both / "ptbxl_database.csv").read_bytes() == (only / "ptbxl_database.csv").read_bytes()
    for r in db.itertuples(index=False):
        hi, fields = wfdb.rdsamp(str(both / r.filename_hr))
        assert hi.shape == (5000, 12)
        assert fields["fs"] == 500
        assert fields["sig_name"] == list(LEADS)
        lo = wfdb.rdsamp(str(both / r.filename_lr))[0]
        assert np.array_equal(lo, wfdb.rdsamp(str(only / r.filename_lr))[0])
        # the same ECG: 100 Hz is the 500 Hz one decimated (up to quantisation)
        down = resample_poly(hi, 1, 5, axis=0, padtype="line")
        assert np.abs(down - lo)[20:-20].max() < 0.005


def test_statements_table(root: Path) -> None:
    text = (root / "scp_statements.csv").read_text(encoding="utf-8")
    assert text == SCP_STATEMENTS_CSV
    st = pd.read_csv(root / "scp_statements.csv", index_col=0)
    assert list(st.columns) == ST_COLUMNS
    assert len(st) == 71
    assert st.loc["NORM", "diagnostic_class"] == "NORM"
    assert st.loc["ASMI", "diagnostic_subclass"] == "AMI"
    assert st.loc["AFIB", "rhythm"] == 1.0
    real = REAL_DEV / "scp_statements.csv"
    if real.is_file():
        assert text == real.read_text(encoding="utf-8")


# --- metadata -------------------------------------------------------------------------------------


def test_database_csv(root: Path, db: pd.DataFrame) -> None:
    lines = (root / "ptbxl_database.csv").read_text().splitlines()
    assert lines[0] == ",".join(DB_COLUMNS)
    assert re.match(r'^1,\d+\.0,\d+\.0,[01],"\{.*\}",\d+,records100/00000/00001_lr,', lines[1])
    assert list(db.columns[:8]) == DB_COLUMNS
    assert db["ecg_id"].tolist() == list(range(1, len(db) + 1))
    assert db["patient_id"].dtype == float
    assert db["age"].between(20, 90).all()
    assert set(db["sex"]) == {0, 1}
    known = set(pd.read_csv(root / "scp_statements.csv", index_col=0).index)
    for codes in db["codes"]:
        assert isinstance(codes, dict) and codes
        assert set(codes) <= known
        assert len(set(codes) & RHYTHM) == 1
        assert all(isinstance(v, float) for v in codes.values())
        for code in set(codes) & RHYTHM:
            assert codes[code] == 0.0


def test_folds_follow_patients(db: pd.DataFrame) -> None:
    assert db.groupby("patient_id")["strat_fold"].nunique().max() == 1
    assert set(db["strat_fold"]) == set(range(1, 11))
    assert db["patient_id"].nunique() == 150
    counts = db["patient_id"].value_counts()
    assert counts.min() >= 1 and counts.max() <= 3


def test_label_frequencies(root: Path, db: pd.DataFrame) -> None:
    st = pd.read_csv(root / "scp_statements.csv", index_col=0)
    diagnostic = set(st.index[st["diagnostic"] == 1])
    counts = Counter(
        code
        for codes in db["codes"]
        for code, lk in codes.items()
        if code in diagnostic and lk >= 50
    )
    ranked = [n for _, n in counts.most_common()]
    top5 = {code for code, _ in counts.most_common(5)}
    assert top5 == {"NORM", "IMI", "ASMI", "LVH", "NDT"}
    assert ranked[4] >= 1.5 * ranked[5]  # the top-5 choice is stable
    norm_only = sum(set(c) <= {"NORM", "SR", "SBRAD", "STACH", "SARRH"} for c in db["codes"])
    assert 0.3 < norm_only / len(db) < 0.5
    likelihoods = Counter(
        lk for codes in db["codes"] for code, lk in codes.items() if code != "NORM"
    )
    assert {15.0, 35.0, 50.0, 100.0} <= set(likelihoods)
    # a statement below the top5 threshold is present in scp_codes but not counted
    assert any(0 < lk < 50 for codes in db["codes"] for lk in codes.values())


# --- determinism ----------------------------------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_deterministic(tmp_path: Path) -> None:
    a = _tree_bytes(write_synthetic_ptbxl(tmp_path / "a", n_patients=6, seed=3))
    b = _tree_bytes(write_synthetic_ptbxl(tmp_path / "b", n_patients=6, seed=3))
    c = _tree_bytes(write_synthetic_ptbxl(tmp_path / "c", n_patients=6, seed=4))
    assert a == b
    assert a["ptbxl_database.csv"] != c["ptbxl_database.csv"]
    common = [k for k in a if k.endswith(".dat") and k in c]
    assert common and all(a[k] != c[k] for k in common)


def test_synthesize_ecg() -> None:
    x = synthesize_ecg({"NORM": 100.0, "SR": 0.0}, rng=np.random.default_rng(0))
    assert x.shape == (1000, 12) and x.dtype == np.float32
    assert synthesize_ecg(["LVH"], fs=500, duration_s=2.5).shape == (1250, 12)
    y = synthesize_ecg(["NORM", "SR"], rng=np.random.default_rng(0))
    assert np.array_equal(x, y)  # an iterable means likelihood 100
    assert not np.array_equal(x, synthesize_ecg(["NORM"], rng=np.random.default_rng(1)))
    assert 0.3 < np.ptp(x[:, 1]) < 5.0  # lead II in millivolts


def test_asmi_changes_only_v1_to_v4() -> None:
    for seed in range(5):
        norm = synthesize_ecg(["NORM"], rng=np.random.default_rng(seed))
        asmi = synthesize_ecg(["ASMI"], rng=np.random.default_rng(seed))
        diff = np.abs(norm - asmi).max(axis=0)
        assert np.all(diff[[0, 1, 2, 3, 4, 5, 10, 11]] == 0)
        assert np.all(diff[6:10] > 0.2)


# --- physiology -----------------------------------------------------------------------------------


def test_limb_lead_relations(signals: dict[int, np.ndarray]) -> None:
    for x in list(signals.values())[:60]:
        i, ii, iii, avr, avl, avf = x[:, :6].T
        np.testing.assert_allclose(iii, ii - i, atol=1.5e-3)
        np.testing.assert_allclose(avr, -(i + ii) / 2, atol=1.5e-3)
        np.testing.assert_allclose(avl, i - ii / 2, atol=1.5e-3)
        np.testing.assert_allclose(avf, ii - i / 2, atol=1.5e-3)
    x = synthesize_ecg(["IMI"], fs=500, rng=np.random.default_rng(2))
    np.testing.assert_allclose(x[:, 2], x[:, 1] - x[:, 0], atol=1e-5)


def _beats(x: np.ndarray, fs: int = 100) -> np.ndarray:
    """QRS positions: peaks of the summed absolute derivative over the 12 leads."""
    energy = np.abs(np.diff(x, axis=0)).sum(axis=1)
    peaks, _ = find_peaks(energy, height=0.4 * np.percentile(energy, 99), distance=fs // 4)
    return peaks


def _st_level(x: np.ndarray) -> np.ndarray:
    """Per lead: mean over beats of (80 ms after the QRS) - (90 ms before it)."""
    p = _beats(x)
    p = p[(p > 15) & (p < len(x) - 15)]
    return (x[p + 8] - x[p - 9]).mean(axis=0)


def _qrs_width_ms(x: np.ndarray, fs: int = 100) -> float:
    """Duration over which the averaged beat's slope exceeds a quarter of its maximum."""
    p = _beats(x)
    p = p[(p > 20) & (p < len(x) - 20)]
    beat = np.stack([x[q - 20 : q + 21] for q in p]).mean(axis=0)
    slope = np.abs(np.diff(beat, axis=0)).sum(axis=1)
    return float((slope > 0.25 * slope.max()).sum() * 1000 / fs)


def _rr_cv(x: np.ndarray) -> float:
    rr = np.diff(_beats(x))
    return float(rr.std() / rr.mean())


def _select(db: pd.DataFrame, signals: dict[int, np.ndarray], pred) -> list[np.ndarray]:
    return [signals[int(e)] for e, c in zip(db["ecg_id"], db["codes"], strict=True) if pred(c)]


def _is_norm(codes: dict) -> bool:
    return next(iter(codes)) == "NORM"


def test_asmi_st_elevation_in_v1_v4(db: pd.DataFrame, signals: dict[int, np.ndarray]) -> None:
    norm = np.array([_st_level(x) for x in _select(db, signals, _is_norm)])
    asmi = np.array([_st_level(x) for x in _select(db, signals, lambda c: c.get("ASMI", 0) >= 50)])
    assert len(norm) > 50 and len(asmi) > 20
    gap = asmi[:, 6:10].mean() - norm[:, 6:10].mean()
    assert gap > 0.08
    # ... and not in the limb leads or V5/V6
    other = [0, 1, 2, 3, 4, 5, 10, 11]
    assert abs(asmi[:, other].mean() - norm[:, other].mean()) < 0.03


def test_imi_st_elevation_inferior(db: pd.DataFrame, signals: dict[int, np.ndarray]) -> None:
    norm = np.array([_st_level(x) for x in _select(db, signals, _is_norm)])
    imi = np.array([_st_level(x) for x in _select(db, signals, lambda c: c.get("IMI", 0) >= 50)])
    inferior = [1, 2, 5]
    assert imi[:, inferior].mean() - norm[:, inferior].mean() > 0.05


def test_bundle_branch_block_widens_qrs(db: pd.DataFrame, signals: dict[int, np.ndarray]) -> None:
    norm = [_qrs_width_ms(x) for x in _select(db, signals, _is_norm)]
    bbb = [_qrs_width_ms(x) for x in _select(db, signals, lambda c: "CLBBB" in c or "CRBBB" in c)]
    assert len(bbb) >= 8
    assert np.mean(bbb) > 1.5 * np.mean(norm)
    assert np.mean(bbb) > 100 and np.mean(norm) < 90


def test_afib_is_irregular(db: pd.DataFrame, signals: dict[int, np.ndarray]) -> None:
    sinus = [_rr_cv(x) for x in _select(db, signals, lambda c: "SR" in c)]
    afib = [_rr_cv(x) for x in _select(db, signals, lambda c: "AFIB" in c)]
    assert len(afib) >= 8
    assert np.mean(afib) > 3 * np.mean(sinus)
    assert np.mean(afib) > 0.12


def test_rhythm_matches_heart_rate(db: pd.DataFrame, signals: dict[int, np.ndarray]) -> None:
    for rhythm, lo, hi in (("SBRAD", 40, 62), ("STACH", 98, 130), ("SR", 57, 103)):
        rates = [
            60 * 100 / np.diff(_beats(x)).mean()
            for x in _select(db, signals, lambda c, r=rhythm: r in c)
        ]
        assert rates, rhythm
        assert lo < np.median(rates) < hi, rhythm


def test_lvh_has_high_voltage(db: pd.DataFrame, signals: dict[int, np.ndarray]) -> None:
    def sokolow(x: np.ndarray) -> float:  # S in V1 + R in V5
        return float(-np.percentile(x[:, 6], 1) + np.percentile(x[:, 10], 99))

    norm = [sokolow(x) for x in _select(db, signals, _is_norm)]
    lvh = [sokolow(x) for x in _select(db, signals, lambda c: c.get("LVH", 0) >= 50)]
    assert np.mean(lvh) > 1.4 * np.mean(norm)


def test_progress_and_bad_arguments(tmp_path: Path) -> None:
    write_synthetic_ptbxl(tmp_path / "p", n_patients=2, progress=True)
    assert (tmp_path / "p" / "records100" / "00000").is_dir()
    with pytest.raises(ValueError):
        write_synthetic_ptbxl(tmp_path / "x", rates=(250,))
    with pytest.raises(ValueError):
        write_synthetic_ptbxl(tmp_path / "x", n_patients=0)
