"""Prediction on recordings: the :class:`Predictor` API, windows, and the batch pipeline of ``ecgcnn predict``.

A recording is read (any format of :mod:`ecgcnn.recording`), put in the model's leads, validated,
resampled to the model's rate and cut into windows of the model's input length; the model scores
every window and the probabilities are aggregated per record (max by default, the PTB-XL
benchmark's choice). A checkpoint runs on PyTorch, an exported ``.onnx`` file on onnxruntime
(imported only then).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgcnn.cache import workers_leave_ctrl_c
from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.recording import (
    BASELINES,
    Recording,
    check_baseline,
    checkpoint_baseline,
    conform,
    default_baseline,
    find_recordings,
    read_recording,
    record_length,
    record_name,
    remove_baseline,
    resample,
    resampled_length,
    segment_samples,
)
from ecgcnn.records import LEADS, unit_scale
from ecgcnn.windows import AGGREGATIONS, window_starts
from ecgcnn.windows import aggregate as aggregate_probabilities

if TYPE_CHECKING:  # for annotations (from_checkpoint imports torch where it runs a checkpoint)
    import torch

OUTPUT_FORMATS = ("table", "csv", "json")
# Below this many records, reading in the calling process beats starting worker processes: a
# spawned reader costs ~3.5 s of CPU before it is up to speed (imports, first calls), a record
# ~6-8 ms; on 2 cores two readers break even near 1,000 records.
PARALLEL_MIN_RECORDS = 1500
CHUNK = 16  # records per worker task: amortises inter-process overhead, keeps memory bounded
# With --every, a long recording is read from disk this much at a time (where its format allows:
# WFDB, ISHNE), so a 24-hour Holter costs minutes' worth of memory, not the day's.
TIMELINE_CHUNK_S = 300.0
# A lead whose median is further than this from zero is said in the warnings (with baseline
# "keep"): no lead of the 1,732 PTB-XL development records sits further than 0.9 mV.
OFFSET_WARN_MV = 1.0

Segment = tuple[float | None, float | None]
log = logging.getLogger(__name__)


def windows(signal: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Cut a (leads, samples) signal into (n, leads, length) float32 windows ``stride`` apart.

    The windows cover the whole signal: the last one is aligned to its end (see
    :func:`ecgcnn.windows.window_starts`), so it may overlap its neighbour more than the others do.
    """
    starts = window_starts(signal.shape[-1], length, stride)
    view = np.lib.stride_tricks.sliding_window_view(signal, int(length), axis=-1)
    return np.ascontiguousarray(np.moveaxis(view[:, starts], 1, 0), dtype=np.float32)


def pad_near_miss(x: np.ndarray, window: int) -> tuple[np.ndarray, bool]:
    """A (samples, leads) signal at most 1/SHORT_TOLERANCE short of ``window`` samples, padded
    with its last value to one window; and whether it was. Anything else comes back as it was."""
    if window - window // SHORT_TOLERANCE <= x.shape[0] < window:
        return np.pad(x, ((0, window - x.shape[0]), (0, 0)), mode="edge"), True
    return x, False


def aggregate_windows(prob: np.ndarray, how: str) -> np.ndarray:
    """One probability per class from (windows, classes): max or mean over the windows."""
    return aggregate_probabilities(prob[None], how)[0]


@dataclass(frozen=True)
class Prediction:
    """The model's output for one recording."""

    record: str
    probabilities: dict[str, float]
    labels: list[str]
    warnings: list[str] = field(default_factory=list)
    filled_leads: list[str] = field(default_factory=list)
    fs: float = 0.0  # the recording's own rate, before resampling
    duration_s: float = 0.0  # of the part that was scored
    windows: int = 1
    start_s: float | None = None  # where the part starts in the recording (--every), else None
    end_s: float | None = None  # and where it ends (the next part's start)

    def to_dict(self) -> dict[str, Any]:
        """The prediction as plain JSON-serialisable data: every field by name (``probabilities``
        a dict of class to probability), as ``predict --format json`` writes each record."""
        return asdict(self)


@dataclass(frozen=True)
class Failure:
    """A recording that could not be predicted, and why."""

    record: str
    problem: str
    start_s: float | None = None  # a part of a recording (--every): where it starts and ends
    end_s: float | None = None

    def __str__(self) -> str:
        part = f" [{self.start_s:g}-{self.end_s:g} s]" if self.start_s is not None else ""
        return f"{self.record}{part}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        part = {"start_s": self.start_s, "end_s": self.end_s} if self.start_s is not None else {}
        return {"record": self.record, **part, "error": self.problem}


@dataclass(frozen=True)
class Prepared:
    """A recording as model-ready windows: (n, leads, window) float32 millivolts at the model's rate."""

    record: str
    windows: np.ndarray
    fs: float
    duration_s: float
    filled_leads: tuple[str, ...]
    warnings: tuple[str, ...]
    start_s: float | None = None
    end_s: float | None = None


# A record up to 1/100 of the window short (9.9 s for a 10 s model) is padded rather than refused:
# devices cut "10 s" records a few samples short.
SHORT_TOLERANCE = 100


@dataclass(frozen=True)
class InputSpec:
    """What turning a recording into model windows needs; small and picklable for worker processes."""

    leads: tuple[str, ...]
    fs: float
    window: int
    stride: int
    source_fs: float | None = None  # for .npy / .csv, which carry no rate
    units: str = "mV"
    allow_missing_leads: bool = False
    segment: Segment | None = None
    baseline: str = "highpass"  # one of BASELINES
    trained_baseline: str = "keep"  # how the model's training records were treated

    def prepare(self, rec: Recording, cut: bool = True) -> Prepared:
        """Segment (unless ``cut`` is False: done already), validate, remove the baseline if asked,
        resample, cut into windows."""
        if self.segment is not None and cut:
            rec = rec.segment(*self.segment)
        rec = rec.validate()
        warn = list(rec.warnings)
        if self.trained_baseline not in ("keep", self.baseline):
            warn.append(f"baseline treated as {self.baseline!r}, but the model learnt records "
                        f"treated as {self.trained_baseline!r} (its default)")  # fmt: skip
        if self.baseline == "keep":
            off = np.abs(np.median(rec.signal, axis=0))
            far = [lead for lead, o in zip(self.leads, off, strict=True) if o > OFFSET_WARN_MV]
            if far:
                warn.append(f"lead(s) {', '.join(far)} more than {OFFSET_WARN_MV:g} mV off zero "
                            "(median), kept: the model learnt centred leads (--baseline "
                            "highpass removes it)")  # fmt: skip
        if rec.fs < self.fs:
            warn.append(f"upsampled from {rec.fs:g} Hz to the model's {self.fs:g} Hz")
        # told before the baseline is treated: a record of fewer samples than leads is too short
        # for any model, not an array in the wrong orientation
        shortest = self.window - self.window // SHORT_TOLERANCE  # padded to a window from there
        if resampled_length(len(rec.signal), rec.fs, self.fs) < shortest:
            raise RecordError(
                rec.name,
                f"too short: {rec.duration_s:g} s, the model needs at least "
                f"{self.window / self.fs:g} s ({self.window} samples at {self.fs:g} Hz)",
            )
        x = resample(remove_baseline(rec.signal, rec.fs, self.baseline), rec.fs, self.fs)
        x, padded = pad_near_miss(x, self.window)
        if padded:
            window_s = self.window / self.fs
            warn.append(f"{rec.duration_s:g} s, {window_s - rec.duration_s:g} s short of the "
                        f"model's {window_s:g} s window: padded with its last value")  # fmt: skip
        w = windows(np.ascontiguousarray(x.T), self.window, self.stride)
        return Prepared(rec.name, w, rec.fs, rec.duration_s, rec.filled_leads, tuple(warn))

    def read(self, path: str | Path) -> Prepared:
        rec = read_recording(path, self.leads, self.source_fs, self.units, self.allow_missing_leads,
                             self.segment)  # fmt: skip
        return self.prepare(rec, cut=False)

    def read_timeline(self, path: str | Path, every_s: float) -> Iterator[Prepared | Failure]:
        """The recording (or its segment) in parts of ``every_s`` seconds, each prepared alone; a
        part that cannot be scored (a lead off for a while) is a failure of that part only.

        Where the header gives the length (WFDB, ISHNE), the parts are read from disk a few minutes
        (``TIMELINE_CHUNK_S``) at a time; other files are read whole, then cut.
        """
        name = record_name(path)
        start, end = self.segment or (None, None)
        length = record_length(path, self.source_fs)
        if length is None:
            rec = read_recording(path, self.leads, self.source_fs, self.units,
                                 self.allow_missing_leads, self.segment)  # fmt: skip
            offset = start or 0.0
            chunks: Iterable[tuple[list[tuple[float, float]], Recording | None]] = [
                (timeline_bounds(offset, offset + rec.duration_s, every_s, self.window_s), rec)
            ]
        else:
            samples, rate = length
            i, j = segment_samples(start, end, samples, rate, name)
            bounds = timeline_bounds(i / rate, j / rate, every_s, self.window_s)
            per = max(1, int(TIMELINE_CHUNK_S // every_s))
            chunks = ((bounds[k : k + per], None) for k in range(0, len(bounds), per))
        for parts, whole in chunks:
            try:
                rec = whole or read_recording(path, self.leads, self.source_fs, self.units,
                                              self.allow_missing_leads, (parts[0][0], parts[-1][1]))  # fmt: skip
            except RecordError as exc:  # a file damaged from here on (a truncated .dat): the rest
                if parts[0][0] == bounds[0][0]:
                    raise  # from its start: the record's own failure (a missing .dat, no leads)
                yield Failure(name, exc.problem, start_s=parts[0][0], end_s=bounds[-1][1])
                return
            offset = parts[0][0]
            for a, b in parts:
                try:
                    prepared = self.prepare(rec.segment(a - offset, b - offset), cut=False)
                except RecordError as exc:
                    yield Failure(name, exc.problem, start_s=a, end_s=b)
                    continue
                yield replace(prepared, start_s=a, end_s=b)

    @property
    def window_s(self) -> float:
        return self.window / self.fs


def _span(row: Prediction | Failure, parts: bool) -> list[str]:
    """A part's start and end (s) for a table's cells; blanks for a whole record's failure."""
    if not parts:
        return []
    if row.start_s is None:
        return ["", ""]
    end = row.end_s
    if end is None and isinstance(row, Prediction):
        end = row.start_s + row.duration_s
    return [f"{row.start_s:g}", f"{end:g}" if end is not None else ""]


def timeline_bounds(
    start_s: float, end_s: float, every_s: float, shortest_s: float
) -> list[tuple[float, float]]:
    """``start_s``-``end_s`` cut into parts of ``every_s`` seconds; a last part shorter than
    ``shortest_s`` (the model's window) joins the part before it."""
    n = max(1, int(np.ceil((end_s - start_s) / every_s - 1e-9)))
    cuts = [start_s + k * every_s for k in range(n)] + [end_s]
    bounds = [(round(a, 9), round(b, 9)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < shortest_s:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def _timeline_stream(
    spec: InputSpec, paths: Sequence[Path], every_s: float
) -> Iterator[Prepared | Failure]:
    """Every path's parts, in order, read in this process (a few long records, not thousands)."""
    for path in paths:
        try:
            yield from spec.read_timeline(path, every_s)
        except Exception as exc:  # any error: see _failure
            yield _failure(path, exc)


def _prepare_chunk(spec: InputSpec, paths: list[Path]) -> list[Prepared | Failure]:
    """Worker task: read a few records; errors travel back as text (RecordError does not pickle)."""
    out: list[Prepared | Failure] = []
    for path in paths:
        try:
            out.append(spec.read(path))
        except Exception as exc:  # any error: see _failure
            out.append(_failure(path, exc))
    return out


def _failure(path: Path, exc: Exception) -> Failure:
    """An error reading ``path`` as that record's failure: one odd file from the wild must not stop
    a batch of thousands, nor the other records of a timeline."""
    if isinstance(exc, RecordError):
        return Failure(exc.record, exc.problem)
    if isinstance(exc, EcgcnnError):
        return Failure(str(path), str(exc))
    return Failure(str(path), f"unexpected error reading it ({type(exc).__name__}: {exc})")


def usable_cores() -> int:
    """Cores this process may run on (taskset / cgroup affinity), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def reader_processes(workers: int | None, n_records: int) -> int:
    """How many processes read records: ``workers``, or by default one per core for many records."""
    if workers is None:
        return usable_cores() if n_records >= PARALLEL_MIN_RECORDS else 0
    if workers < 0:
        raise EcgcnnError(f"--workers must be 0 or more, got {workers}")
    return workers


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Limit PyTorch's intra-op threads for a while (None: leave them).

    While reader processes keep every core busy, a second inference thread only waits for a core:
    on an oversubscribed machine that turns a 1 ms batch into hundreds of milliseconds.
    """
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prepared_stream(
    spec: InputSpec, paths: Sequence[Path], workers: int | None = None
) -> Iterator[Prepared | Failure]:
    """Every path prepared, in order; read by ``workers`` processes (None: automatic).

    WFDB header parsing is pure Python and holds the GIL, so parallel reading needs processes.
    At most a few chunks per worker are in flight, so memory stays bounded for any number of files.
    Worker processes are spawned, so a script calling this needs the ``if __name__ ==
    "__main__":`` guard; if the workers die anyway, the rest is read in this process.
    """
    workers = reader_processes(workers, len(paths))
    if workers < 1 or not paths:
        for path in paths:
            yield from _prepare_chunk(spec, [path])
        return
    size = max(1, min(CHUNK, -(-len(paths) // workers)))
    chunks = [list(paths[i : i + size]) for i in range(0, len(paths), size)]
    done = 0  # chunks yielded so far
    try:
        # spawn, not fork: forking a process that runs torch's thread pool can deadlock.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            with workers_leave_ctrl_c():  # the workers start with the first submissions
                in_flight = deque(
                    pool.submit(_prepare_chunk, spec, c) for c in chunks[: 4 * workers]
                )
            while in_flight:
                result = in_flight.popleft().result()
                if done + len(in_flight) + 1 < len(chunks):
                    in_flight.append(
                        pool.submit(_prepare_chunk, spec, chunks[done + len(in_flight) + 1])
                    )
                done += 1
                yield from result
    except BrokenProcessPool as exc:
        log.warning(
            "reader processes failed (%s); reading the remaining records in this process", exc
        )
        for chunk in chunks[done:]:
            yield from _prepare_chunk(spec, chunk)


@dataclass
class BatchResult:
    """Predictions for many recordings, the failures, and how to render them."""

    classes: list[str]
    thresholds: list[float]
    model: dict[str, Any]
    predictions: list[Prediction] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    every_s: float | None = None  # one prediction per part of this length (--every)
    records: int = 0  # with every_s: how many recordings the parts come from

    @property
    def total(self) -> int:
        return len(self.predictions) + len(self.failures)

    def summary(self) -> str:
        if self.every_s is not None:
            text = f"predicted {len(self.predictions)} part(s) of {self.records} record(s)"
        else:
            text = f"predicted {len(self.predictions)} of {self.total} record(s)"
        return text + (f"; {len(self.failures)} failed" if self.failures else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "classes": self.classes,
            "thresholds": self.thresholds,
            "predictions": [p.to_dict() for p in self.predictions],
            "failures": [f.to_dict() for f in self.failures],
            "summary": {
                "records": self.total if self.every_s is None else self.records,
                "predicted": len(self.predictions),
                "failed": len(self.failures),
                **({} if self.every_s is None else {"every_s": self.every_s}),
            },
        }

    def render(self, fmt: str = "table") -> str:
        """The result as text: 'table' (aligned, for people), 'csv' or 'json'."""
        check_format(fmt)
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2) + "\n"
        if fmt == "csv":
            return self._csv()
        return self._table()

    def _csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        parts = self.every_s is not None
        times = ["start_s", "end_s"] if parts else []
        writer.writerow(["record", *times, "labels", *(f"p_{c}" for c in self.classes),
                         "filled_leads", "warnings", "error"])  # fmt: skip
        for row in self._in_order():
            if isinstance(row, Prediction):
                probs = [f"{row.probabilities[c]:.6f}" for c in self.classes]
                writer.writerow([row.record, *_span(row, parts), ";".join(row.labels), *probs,
                                 ";".join(row.filled_leads), "; ".join(row.warnings), ""])  # fmt: skip
            else:
                writer.writerow([row.record, *_span(row, parts), "", *([""] * len(self.classes)),
                                 "", "", row.problem])  # fmt: skip
        return buf.getvalue()

    def _in_order(self) -> list[Prediction | Failure]:
        """Predictions and failures together: records in the order met, their parts in time."""
        rows: list[Prediction | Failure] = [*self.predictions, *self.failures]
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            first.setdefault(row.record, i)
        # a whole record's failure after any parts of it (a read that failed part-way)
        return sorted(rows, key=lambda r: (first[r.record], r.start_s is None,
                                           r.start_s or 0.0))  # fmt: skip

    def _table(self) -> str:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        wide = len(self.classes) > 8
        table = Table(title=f"{self.model.get('name')} ({self.model.get('task')})", box=box.SIMPLE)
        table.add_column("record", overflow="fold")
        parts = self.every_s is not None
        if parts:
            table.add_column("part", justify="right")
        table.add_column("labels")
        if wide:
            table.add_column("highest probabilities")
        else:
            for c in self.classes:
                table.add_column(c, justify="right")
        table.add_column("warnings", overflow="fold")
        for p in self._in_order():
            span = ["{}-{} s".format(*_span(p, True))] if parts and p.start_s is not None else (
                [""] if parts else [])  # fmt: skip
            if isinstance(p, Failure):
                blanks = [""] * (1 if wide else len(self.classes))
                table.add_row(p.record, *span, "failed", *blanks, p.problem)
                continue
            labels = ", ".join(p.labels) or "-"
            if wide:
                top = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:3]
                cells = [", ".join(f"{c} {v:.2f}" for c, v in top)]
            else:
                cells = [f"{p.probabilities[c]:.3f}" for c in self.classes]
            table.add_row(p.record, *span, labels, *cells, "; ".join(p.warnings))
        buf = io.StringIO()
        Console(file=buf, width=220, color_system=None, force_terminal=False).print(table)
        return buf.getvalue()


def check_format(fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise EcgcnnError(f"unknown format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


class Predictor:
    """A trained model plus everything needed to apply it to a recording.

    ``infer`` maps (batch, leads, window) float32 millivolts to (batch, classes) probabilities;
    ``meta`` holds the checkpoint's description (classes, fs, input_length, leads, thresholds...).
    Optional meta keys ``window``, ``stride`` (samples) and ``aggregate`` are honoured; by default
    the window is the input length, the stride half of it, and windows are aggregated by max.
    """

    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        meta: dict[str, Any],
        backend: str,
        threshold: float | None = None,
        aggregate: str | None = None,
        batch_size: int = 256,
    ) -> None:
        try:
            self.classes: list[str] = [str(c) for c in meta["classes"]]
            self.fs = float(meta["fs"])
            # None in meta means the default: the whole input, half-overlapping windows, max.
            self.window = int(meta.get("window") or meta["input_length"])
            self.stride = int(meta.get("stride") or max(1, self.window // 2))
            self.leads: tuple[str, ...] = tuple(meta.get("leads") or LEADS)
            stored = np.asarray(meta["thresholds"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise EcgcnnError(f"model metadata incomplete or malformed ({exc!r})") from None
        self.aggregate = aggregate or str(meta.get("aggregate") or "max")
        # how the records the model learnt from had their baseline treated (keep: as recorded),
        # and so how recordings are treated unless the caller says otherwise (keep: highpass)
        self.trained_baseline = checkpoint_baseline(meta)
        if self.trained_baseline not in BASELINES:
            raise EcgcnnError(f"model metadata has an unknown baseline {self.trained_baseline!r}")
        self.default_baseline = default_baseline(self.trained_baseline)
        self._warned: set[str] = set()  # baselines told to differ from the trained one
        if self.aggregate not in AGGREGATIONS:
            raise EcgcnnError(
                f"unknown aggregate {self.aggregate!r}; expected one of {', '.join(AGGREGATIONS)}"
            )
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise EcgcnnError(f"--threshold must be between 0 and 1, got {threshold}")
        self.thresholds = np.full(len(self.classes), threshold) if threshold is not None else stored
        if self.thresholds.shape != (len(self.classes),):
            raise EcgcnnError(
                f"model metadata has {len(self.thresholds)} thresholds for {len(self.classes)} classes"
            )
        if batch_size < 1:
            raise EcgcnnError(f"batch size must be positive, got {batch_size}")
        self.meta = meta
        self.model: Any = None  # the torch module, for a checkpoint (explanations need it)
        self.backend = backend
        self.batch_size = batch_size
        self._infer = infer

    # --- construction ---

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        threshold: float | None = None,
        aggregate: str | None = None,
        batch_size: int = 256,
    ) -> Predictor:
        """Run a checkpoint (``checkpoint.pt``) on PyTorch, on ``device``: cpu, cuda, cuda:N, or
        auto (cuda where there is a GPU, else cpu)."""
        import torch

        from ecgcnn.checkpoint import load_checkpoint, model_from_checkpoint, resolve_device

        device = resolve_device(device)
        model = model_from_checkpoint(load_checkpoint(path), str(path)).to(device).eval()

        def infer(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                logits = model(torch.from_numpy(x).to(device))
                return torch.sigmoid(logits).float().cpu().numpy()

        predictor = cls(infer, model.meta, "pytorch", threshold, aggregate, batch_size)
        predictor.model = model
        return predictor

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        threshold: float | None = None,
        aggregate: str | None = None,
        batch_size: int = 256,
        threads: int | None = None,
    ) -> Predictor:
        """Run an exported model (``ecgcnn export``) on onnxruntime."""
        from ecgcnn.export import INPUT_NAME, PROBABILITIES, load_onnx_session

        session, meta = load_onnx_session(path, threads)

        def infer(x: np.ndarray) -> np.ndarray:
            return session.run([PROBABILITIES], {INPUT_NAME: x})[0]

        return cls(infer, meta, "onnxruntime", threshold, aggregate, batch_size)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Predictor:
        """A checkpoint (``.pt``, ``.pth``) or an exported model (``.onnx``); another name is told by
        its content (a PyTorch checkpoint is a zip archive). ``threads`` is onnxruntime's intra-op
        thread count (ignored for a checkpoint); the other arguments are those of
        :meth:`from_checkpoint` and :meth:`from_onnx`."""
        import zipfile

        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".onnx" or (
            suffix not in (".pt", ".pth") and p.is_file() and not zipfile.is_zipfile(p)
        ):
            kwargs.pop("device", None)
            return cls.from_onnx(path, **kwargs)
        kwargs.pop(
            "threads", None
        )  # onnxruntime's; PyTorch's are the process's (torch.set_num_threads)
        return cls.from_checkpoint(path, **kwargs)

    # --- prediction ---

    def input_spec(
        self,
        fs: float | None = None,
        units: str = "mV",
        allow_missing_leads: bool = False,
        segment: Segment | None = None,
        baseline: str | None = None,
    ) -> InputSpec:
        """How recordings are read for this model (``fs`` and ``units`` of .npy / .csv files,
        ``baseline`` one of BASELINES)."""
        if unit_scale(units) is None:
            raise EcgcnnError(f"--units {units!r}: expected mV, uV or V")
        baseline = check_baseline(baseline or self.default_baseline)
        if self.trained_baseline not in ("keep", baseline) and baseline not in self._warned:
            self._warned.add(baseline)  # once per Predictor: predict() may be called per record
            log.warning("the model learnt records with the baseline treated as %r; --baseline %s "
                        "treats recordings otherwise", self.trained_baseline, baseline)  # fmt: skip
        return InputSpec(self.leads, self.fs, self.window, self.stride, fs, units,
                         allow_missing_leads, segment, baseline, self.trained_baseline)  # fmt: skip

    def predict_windows(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) of model-ready windows, one row per window, in batches.

        ``x`` is (n, leads, window): millivolts at the model's rate (``fs``), its ``leads`` in
        order, ``window`` samples each, the baseline already treated (:meth:`predict` treats it
        as ``default_baseline`` says); the windows are not aggregated. Any other shape, and NaN or
        infinite values, are an EcgcnnError.
        """
        try:
            x = np.ascontiguousarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise EcgcnnError(f"windows: expected numbers (millivolts): {exc}") from None
        want = (len(self.leads), self.window)
        if x.ndim != 3 or x.shape[1:] != want:
            batch = "; add a batch axis: x[None]" if x.shape == want else ""
            raise EcgcnnError(
                f"windows: expected shape (n, {want[0]}, {want[1]}) ({want[0]} leads, "
                f"{self.window} samples: {self.window / self.fs:g} s at {self.fs:g} Hz), got "
                f"{x.shape}{batch}"
            )
        bad = ~np.isfinite(x)
        if bad.any():
            window, lead, _ = np.argwhere(bad)[0]
            raise EcgcnnError(
                f"windows: {int(bad.sum())} NaN or infinite value(s) (first in window {window}, "
                f"lead {self.leads[lead]})"
            )
        out = [self._infer(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict(
        self,
        signal: np.ndarray,
        fs: float,
        leads: Sequence[str] | None = None,
        units: str = "mV",
        allow_missing_leads: bool = False,
        segment: Segment | None = None,
        name: str = "signal",
        baseline: str | None = None,
    ) -> Prediction:
        """Predict one ECG given as an array: (samples, leads) or (leads, samples), at ``fs`` Hz.

        ``leads`` names the array's channels in order (None: the model's leads, in its order);
        ``units`` are the samples' (mV, uV or V; the model reads mV). The recording is prepared as
        ``ecgcnn predict`` prepares a file: its baseline treated as ``baseline`` says, by default
        as in the records the model learnt, except that for a model that learnt them as recorded
        (``keep``, every recipe's default) the input is high-pass filtered below 0.5 Hz
        (``baseline="keep"`` scores it as recorded); then resampled to the model's rate, cut into the model's windows (``stride`` apart, the
        last aligned to the end; a record up to 1% short of one window is padded) and the windows'
        probabilities aggregated (``aggregate``: max or mean) into one per class.
        """
        spec = self.input_spec(fs, units, allow_missing_leads, segment, baseline)
        rec = conform(signal, fs, leads, name, self.leads, units, allow_missing_leads)
        return self._predict_prepared([spec.prepare(rec)])[0]

    def predict_record(
        self,
        path: str | Path,
        fs: float | None = None,
        units: str = "mV",
        allow_missing_leads: bool = False,
        segment: Segment | None = None,
        baseline: str | None = None,
    ) -> Prediction:
        """Predict one recording file (WFDB, EDF, DICOM, ECG XML, SCP-ECG, ISHNE Holter, or .npy/.csv
        with ``fs``; ``units`` for .npy/.csv without a units row: mV, uV or V, converted to mV).

        As :meth:`predict`: the baseline treated as ``baseline`` says, by default high-pass filtered
        below 0.5 Hz for a model that learnt records as recorded (else as in the records it learnt;
        ``baseline="keep"`` scores it as recorded), resampled to the model's rate, cut into windows
        whose probabilities are aggregated (max or mean) into one per class.
        """
        spec = self.input_spec(fs, units, allow_missing_leads, segment, baseline)
        return self._predict_prepared([spec.read(path)])[0]

    def predict_paths(
        self,
        paths: Iterable[str | Path],
        fs: float | None = None,
        units: str = "mV",
        allow_missing_leads: bool = False,
        segment: Segment | None = None,
        workers: int | None = None,
        progress: bool = False,
        every: float | None = None,
        baseline: str | None = None,
    ) -> BatchResult:
        """Predict files, record names and directories; bad records become failures, not errors.

        Records are read in worker processes while this process runs the model on batches. With
        ``every`` (seconds), each recording gets one prediction per part of that length (a
        timeline of a Holter), its parts read in this process a few minutes at a time.
        """
        from tqdm.auto import tqdm

        spec = self.input_spec(fs, units, allow_missing_leads, segment, baseline)
        if every is not None and not (math.isfinite(every) and every >= spec.window_s):
            raise EcgcnnError(
                f"--every {every:g}: a number of seconds, at least the model's window "
                f"({spec.window_s:g} s), expected"
            )
        files, missing = find_recordings(paths, arrays=fs is not None)
        result = BatchResult(self.classes, self.thresholds.tolist(), self.describe(),
                             every_s=every, records=len(files) + len(missing))  # fmt: skip
        result.failures.extend(Failure(e.record, e.problem) for e in missing)
        pending: list[Prepared] = []
        n_windows = 0
        workers = 0 if every is not None else reader_processes(workers, len(files))
        threads = 1 if workers >= 1 and self.backend == "pytorch" else None
        items = (prepared_stream(spec, files, workers) if every is None
                 else _timeline_stream(spec, files, every))  # fmt: skip
        total, unit = (len(files), "record") if every is None else (None, "part")
        with tqdm(total=total, desc="predicting", unit=unit,
                  disable=None if progress else True) as bar, torch_threads(threads):  # fmt: skip
            for item in items:
                if isinstance(item, Failure):
                    result.failures.append(item)
                    bar.update(1)
                    continue
                pending.append(item)
                n_windows += len(item.windows)
                if n_windows >= self.batch_size:
                    result.predictions.extend(self._predict_prepared(pending))
                    bar.update(len(pending))
                    pending, n_windows = [], 0
            if pending:
                result.predictions.extend(self._predict_prepared(pending))
                bar.update(len(pending))
        return result

    def describe(self) -> dict[str, Any]:
        """The model, as the output of a batch reports it."""
        return {
            "name": (self.meta.get("model") or {}).get("name"),
            "members": int((self.meta.get("model") or {}).get("members", 1)),
            "task": self.meta.get("task"),
            "backend": self.backend,
            "fs": self.fs,
            "window": self.window,
            "stride": self.stride,
            "aggregate": self.aggregate,
            "trained_baseline": self.trained_baseline,
            "default_baseline": self.default_baseline,
            "version": self.meta.get("version"),
        }

    def _predict_prepared(self, items: list[Prepared]) -> list[Prediction]:
        x = np.concatenate([p.windows for p in items]) if len(items) > 1 else items[0].windows
        prob = self.predict_windows(x)
        out, start = [], 0
        for p in items:
            agg = aggregate_windows(prob[start : start + len(p.windows)], self.aggregate)
            start += len(p.windows)
            out.append(
                Prediction(
                    record=p.record,
                    probabilities={c: float(v) for c, v in zip(self.classes, agg, strict=True)},
                    labels=[
                        c
                        for c, v, t in zip(self.classes, agg, self.thresholds, strict=True)
                        if v >= t
                    ],  # fmt: skip
                    warnings=list(p.warnings),
                    filled_leads=list(p.filled_leads),
                    fs=p.fs,
                    duration_s=p.duration_s,
                    windows=len(p.windows),
                    start_s=p.start_s,
                    end_s=p.end_s,
                )
            )
        return out


def predict_files(
    model: str | Path,
    paths: Iterable[str | Path],
    fs: float | None = None,
    units: str = "mV",
    allow_missing_leads: bool = False,
    segment: str | Segment | None = None,
    threshold: float | None = None,
    aggregate: str | None = None,
    workers: int | None = None,
    batch_size: int = 256,
    progress: bool = True,
    every: float | None = None,
    baseline: str | None = None,
) -> BatchResult:
    """``ecgcnn predict``: a checkpoint or .onnx model applied to files, record names, directories."""
    from ecgcnn.recording import parse_segment

    seg = parse_segment(segment) if isinstance(segment, str) or segment is None else segment
    if fs is not None and not fs > 0:
        raise EcgcnnError(f"--fs must be positive, got {fs}")
    predictor = Predictor.load(
        model, threshold=threshold, aggregate=aggregate, batch_size=batch_size
    )
    return predictor.predict_paths(
        paths, fs, units, allow_missing_leads, seg, workers, progress, every, baseline
    )
