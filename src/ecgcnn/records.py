"""PTB-XL on disk: the metadata tables and the WFDB records they point to."""

from __future__ import annotations

import ast
import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from ecgcnn.errors import EcgcnnError, RecordError

LEADS: tuple[str, ...] = (
    "I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip
DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
REQUIRED_COLUMNS: tuple[str, ...] = (
    "ecg_id", "patient_id", "scp_codes", "filename_lr", "filename_hr",
)  # fmt: skip
# strat_fold is PTB-XL's; a user's own data may lack it (or some cells): patient-wise CV needs none.
# Such records get NO_FOLD, and what needs strat_folds refuses them (require_strat_folds).
OPTIONAL_COLUMNS: tuple[str, ...] = ("strat_fold", "age", "sex")
NO_FOLD = 0
RATES = {100: "filename_lr", 500: "filename_hr"}


@dataclass(frozen=True)
class Database:
    """The metadata of one PTB-XL root: one row per record (indexed by ecg_id) and the statements."""

    root: Path
    records: pd.DataFrame
    statements: pd.DataFrame
    has_strat_fold_column: bool = True  # False: every record's strat_fold is NO_FOLD

    def record_path(self, ecg_id: int, fs: int) -> Path:
        """Path of a record without extension (as wfdb wants it)."""
        return self.root / str(self.records.at[ecg_id, RATES[fs]])


def check_rate(fs: int) -> int:
    if fs not in RATES:
        raise EcgcnnError(
            f"sampling rate {fs} Hz is not in PTB-XL; expected one of {sorted(RATES)}"
        )
    return fs


def parse_scp_codes(text: object, where: str) -> dict[str, float]:
    """Parse one scp_codes cell, a Python dict literal, safely (never eval)."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        raise EcgcnnError(
            f"{where}: scp_codes is empty (expected a dict literal like {{'NORM': 100.0}})"
        )
    try:
        value = ast.literal_eval(str(text))
    # literal_eval raises TypeError ({[]: 1}) and MemoryError/RecursionError (deep nesting) too
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise EcgcnnError(f"{where}: scp_codes {text!r} is not a dict literal ({exc})") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) for k, v in value.items()
    ):
        raise EcgcnnError(f"{where}: scp_codes {text!r} is not a dict of code -> likelihood")
    return {k: float(v) for k, v in value.items()}


def csv_dialect(path: Path) -> dict[str, str]:
    """pandas options for a CSV as PhysioNet writes it (UTF-8, ',') or as a spreadsheet re-saves it:
    ';' or tab separators, decimal commas, the Windows code page (Excel in most European locales).
    The separator comes from the header line, the decimal mark from the numbers in the first rows."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)  # pandas reads the whole file next: judge by its start
    except OSError:
        return {}  # the read that follows names the problem
    try:  # an incremental decoder tolerates a character cut at the end of the head
        text, encoding = codecs.getincrementaldecoder("utf-8")().decode(head), "utf-8"
    except UnicodeDecodeError:
        text, encoding = head.decode("cp1252", errors="replace"), "cp1252"
    lines = text.splitlines()
    header = lines[0] if lines else ""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    options = {} if encoding == "utf-8" else {"encoding": encoding}
    if counts[","] >= max(counts[";"], counts["\t"]):
        return options
    sep = ";" if counts[";"] > counts["\t"] else "\t"
    cells = [c.strip().strip('"') for line in lines[1:200] for c in line.split(sep)]
    commas = sum(bool(_COMMA_DECIMAL.fullmatch(c)) for c in cells)
    dots = sum(bool(_DOT_DECIMAL.fullmatch(c)) for c in cells)
    return options | {"sep": sep} | ({"decimal": ","} if commas > dots else {})


SNIFF_BYTES = 1 << 20
_COMMA_DECIMAL = re.compile(r"-?\d+,\d+")
_DOT_DECIMAL = re.compile(r"-?\d+\.\d+")


def load_database(root: str | Path) -> Database:
    """Read and validate ptbxl_database.csv and scp_statements.csv under a PTB-XL root."""
    root = Path(root)
    if not root.is_dir():
        raise EcgcnnError(f"data root {root} does not exist or is not a directory")
    db_path, st_path = root / DATABASE_CSV, root / STATEMENTS_CSV
    for path in (db_path, st_path):
        if not path.is_file():
            raise EcgcnnError(
                f"{path} not found: a PTB-XL root holds {DATABASE_CSV} and {STATEMENTS_CSV}"
            )
    dialect = csv_dialect(db_path)
    try:
        head = pd.read_csv(db_path, nrows=0, **dialect)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EcgcnnError(f"{db_path}: not a readable CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in head.columns]
    if missing:
        raise EcgcnnError(
            f"{db_path}: missing required column(s) {', '.join(missing)}; "
            f"expected at least {', '.join(REQUIRED_COLUMNS)}"
        )
    usecols = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in head.columns]
    try:
        df = pd.read_csv(db_path, usecols=usecols, **dialect)
    except (pd.errors.ParserError, ValueError) as exc:
        raise EcgcnnError(f"{db_path}: not a readable CSV ({exc})") from None
    has_folds = "strat_fold" in df.columns
    if not has_folds:
        df["strat_fold"] = NO_FOLD
    else:
        raw = df["strat_fold"].astype(object)  # may be strings: then a number cannot be put in
        blank = raw.isna() | (raw.astype(str).str.strip() == "")
        df["strat_fold"] = raw.where(~blank, NO_FOLD)
    for col in ("ecg_id", "patient_id", "strat_fold"):
        values = pd.to_numeric(df[col], errors="coerce")
        # inf cannot be cast and beyond 2**53 floats are no longer exact whole numbers
        bad = ~np.isfinite(values) | (values.abs() > 2**53) | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            # ecg_id is checked first, so the other columns' rows can be named by it
            which = f" (ecg_id {df['ecg_id'].iloc[row]})" if col != "ecg_id" else ""
            where = f"{db_path}: line {row + 2}{which}"  # the header is line 1
            if pd.isna(df[col].iloc[row]):
                raise EcgcnnError(f"{where} has no {col}")
            blank = " or blank" if col == "strat_fold" else ""  # a record in no fold
            raise EcgcnnError(
                f"{where}: {col} must be a whole number{blank}, not {df[col].iloc[row]!r}"
            )
        df[col] = values.astype(np.int64)
    if df["ecg_id"].duplicated().any():
        dup = int(df.loc[df["ecg_id"].duplicated(), "ecg_id"].iloc[0])
        raise EcgcnnError(f"{db_path}: ecg_id {dup} appears more than once")
    df["scp_codes"] = [
        parse_scp_codes(text, f"{db_path} ecg_id {eid}")
        for eid, text in zip(df["ecg_id"], df["scp_codes"], strict=True)
    ]
    for col in RATES.values():  # a CSV edited on Windows: records100\00000\00001_lr
        if not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].str.replace("\\", "/", regex=False)
    df = df.set_index("ecg_id").sort_index()
    statements = _load_statements(st_path)
    return Database(root=root, records=df, statements=statements, has_strat_fold_column=has_folds)


def require_strat_folds(db: Database, ecg_ids: np.ndarray, why: str) -> None:
    """Refuse records without a strat_fold where ``why`` (an option) splits by strat_fold."""
    where = db.root / DATABASE_CSV
    if not db.has_strat_fold_column:
        raise EcgcnnError(
            f"{where} has no strat_fold column; {why} needs one (`ecgcnn train --protocol cv` "
            "without --holdout-fold splits by patient and needs none)"
        )
    folds = db.records.loc[ecg_ids, "strat_fold"].to_numpy()
    if (folds == NO_FOLD).any():
        first = int(np.asarray(ecg_ids)[folds == NO_FOLD][0])
        raise EcgcnnError(
            f"{where}: ecg_id {first} has no strat_fold; {why} needs one for every record "
            "(`ecgcnn train --protocol cv` without --holdout-fold does not)"
        )


def _load_statements(path: Path) -> pd.DataFrame:
    try:
        st = pd.read_csv(path, index_col=0, **csv_dialect(path))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EcgcnnError(f"{path}: not a readable CSV ({exc})") from None
    needed = ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")
    missing = [c for c in needed if c not in st.columns]
    if missing:
        raise EcgcnnError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in ("diagnostic", "form", "rhythm"):
        values = pd.to_numeric(st[col], errors="coerce")
        st[col] = values.where(np.isfinite(values), 0).astype(int)  # inf cannot be cast
    return st


# Factors to millivolts by lower-cased unit name (both micro signs: U+00B5 and Greek U+03BC; the
# Cyrillic мВ, мкВ and В of Russian-language carts).
UNIT_SCALE: dict[str, float] = {
    "mv": 1.0, "millivolt": 1.0, "millivolts": 1.0, "\u043c\u0432": 1.0,
    "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3,
    "\u043c\u043a\u0432": 1e-3,
    "v": 1e3, "volt": 1e3, "volts": 1e3, "\u0432": 1e3,
}  # fmt: skip


def unit_scale(unit: object) -> float | None:
    """The factor that turns a signal in ``unit`` into millivolts; None for an unknown unit."""
    return UNIT_SCALE.get(str(unit).strip().lower())


def header_units(name: str, units: Sequence[str]) -> list[str]:
    """``units`` as wfdb read them from ``name``.hea, with any unit wfdb mangled taken as written.

    wfdb reads a header as ASCII and drops what is not: 'µV' (micro sign or Greek mu, as
    ``wfdb.wrsamp`` itself writes them) arrives as 'V', a millionfold error. Those units are read
    from the header's bytes (UTF-8, else Windows-1251 where that names a known unit, else
    Latin-1). A multi-segment or unreadable header keeps wfdb's.
    """
    units = list(units)
    try:
        raw = Path(f"{name}.hea").read_bytes()
    except OSError:
        return units
    if raw.isascii():
        return units
    try:
        texts = [raw.decode("utf-8")]
    except UnicodeDecodeError:  # Windows-1251 (Russian Windows software) when it names a unit
        texts = [raw.decode("cp1251", errors="replace"), raw.decode("latin-1")]
    written = [_written_units(text, len(units)) for text in texts]
    for i in range(len(units)):
        found = [w[i] for w in written if w is not None and w[i]]
        if found:
            units[i] = next((u for u in found if unit_scale(u) is not None), found[-1])
    return units


def _written_units(text: str, n: int) -> list[str] | None:
    """The non-ASCII units of a WFDB header's first ``n`` signal lines ('' where ASCII)."""
    lines = [line.split() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    if not lines or "/" in lines[0][0] or len(lines) - 1 < n:
        return None
    units = []
    for parts in lines[1 : 1 + n]:
        gain = parts[2] if len(parts) > 2 else ""
        unit = gain.split("/", 1)[1] if "/" in gain else ""
        units.append(unit if unit and not unit.isascii() else "")
    return units


def read_record(path: str | Path, leads: tuple[str, ...] = LEADS) -> tuple[np.ndarray, int]:
    """Read a WFDB record (path without extension) as float32 millivolts of shape (T, leads).

    Leads are matched by name, case-insensitively, and put in the order asked for.
    Any failure becomes a RecordError naming the record.
    """
    name = str(path)
    try:
        signal, fields = wfdb.rdsamp(name)
    except FileNotFoundError as exc:
        raise RecordError(name, f"file not found ({Path(exc.filename or name).name})") from None
    except Exception as exc:  # wfdb raises many types on corrupt input
        raise RecordError(name, f"unreadable WFDB record ({type(exc).__name__}: {exc})") from None
    expected_len = fields.get("sig_len")
    # a header listing no signals reads as None
    if (
        signal is None
        or signal.ndim != 2
        or (expected_len is not None and signal.shape[0] != expected_len)
    ):
        shape = None if signal is None else signal.shape
        raise RecordError(name, f"signal has shape {shape}, header says {expected_len} samples")
    names = [str(n).upper() for n in fields["sig_name"]]
    try:
        order = [names.index(lead.upper()) for lead in leads]
    except ValueError:
        absent = [lead for lead in leads if lead.upper() not in names]
        raise RecordError(
            name, f"missing lead(s) {', '.join(absent)}; has {', '.join(names)}"
        ) from None
    signal = signal[:, order]
    units = np.asarray(header_units(name, fields.get("units") or ["mV"] * len(names)))[order]
    scale = np.array([unit_scale(u) or 1.0 for u in units])
    signal = signal * scale
    if not np.isfinite(signal).all():
        raise RecordError(name, "signal contains NaN or infinite samples")
    return signal.astype(np.float32), int(fields["fs"])
