"""ONNX export: a checkpoint as a self-describing ``.onnx`` file plus a sidecar ``.onnx.json``.

The graph takes windows of ECGs, ``ecg`` (batch, leads, window) float32 millivolts with a dynamic
batch axis, and returns ``logits`` and ``probabilities`` (batch, classes). The per-lead
standardisation is inside the graph, so a consumer feeds millivolts and must not normalise again;
the baseline treatment (``default_baseline``: what predict applies), resampling, windowing and
aggregation are not, and are the consumer's (README "ecgcnn export"). Everything needed to use it
(classes, rate, window, stride, leads, thresholds...) is stored twice: as ONNX ``metadata_props``
(JSON-encoded values) and in the sidecar JSON, for tools that read neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcnn import __version__, atomic
from ecgcnn.errors import EcgcnnError
from ecgcnn.recording import HIGHPASS_HZ, checkpoint_baseline, default_baseline
from ecgcnn.records import LEADS

ONNX_FORMAT = "ecgcnn-onnx/1"
# /2: the records need their baseline treated before the graph ("baseline" other than "keep"); an
# ecgcnn older than that setting reads /1 only and so refuses such a file instead of ignoring it.
ONNX_FORMAT_TREATED_BASELINE = "ecgcnn-onnx/2"
ONNX_FORMATS = (ONNX_FORMAT, ONNX_FORMAT_TREATED_BASELINE)
INPUT_NAME = "ecg"
LOGITS, PROBABILITIES = "logits", "probabilities"
DEFAULT_OPSET = 17
# Export is checked against PyTorch on random input: logits must agree within this absolute plus
# this relative difference (float32 rounding grows with the logits), or the file is not written.
TOLERANCE = 1e-4
REQUIRED_KEYS = ("format", "classes", "fs", "input_length", "window", "leads", "thresholds")


def sidecar_path(onnx_path: str | Path) -> Path:
    """model.onnx -> model.onnx.json"""
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def onnx_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The description of a checkpoint that an ONNX file carries (values JSON-serialisable)."""
    window = int(meta.get("window") or meta["input_length"])  # None: the whole input
    leads = list(meta.get("leads") or LEADS)
    pre = meta["preprocess"]
    baseline = checkpoint_baseline(meta)
    return {
        "format": ONNX_FORMAT if baseline == "keep" else ONNX_FORMAT_TREATED_BASELINE,
        "model": {
            "name": meta["model"]["name"],
            "kwargs": meta["model"].get("kwargs", {}),
            "members": int(meta["model"].get("members", 1)),
        },
        "task": meta["task"],
        "classes": list(meta["classes"]),
        "leads": leads,
        "fs": meta["fs"],
        "units": "mV",
        "input_length": int(meta["input_length"]),
        "window": window,
        "stride": int(meta.get("stride") or max(1, window // 2)),
        "aggregate": meta.get("aggregate") or "max",
        # how the records the model learnt from had their baseline treated (outside the graph)
        "baseline": baseline,
        # and how predict, serve and Predictor treat a recording's for it by default (outside the
        # graph too): highpass for a model that learnt records as recorded
        "default_baseline": default_baseline(baseline),
        "preprocess": {"mean": list(pre["mean"]), "std": list(pre["std"]), "in_graph": True},
        "thresholds": [float(t) for t in meta["thresholds"]],
        "threshold_source": meta.get("threshold_source"),
        "input": {"name": INPUT_NAME, "shape": ["batch", len(leads), window], "dtype": "float32"},
        "outputs": [LOGITS, PROBABILITIES],
        "fold": meta.get("fold"),
        "epoch": meta.get("epoch"),
        "version": meta.get("version"),
        "exported_by": f"ecgcnn {__version__}",
    }


def describe_graph(info: dict[str, Any]) -> str:
    """The ONNX graph's doc_string: its input as predict prepares it, from :func:`onnx_metadata`."""
    how = info["default_baseline"]
    treated = {
        "highpass": f"each lead high-pass filtered below {HIGHPASS_HZ:g} Hz (zero-phase Butterworth, "
                    "order 2)",
        "median": "each lead's median subtracted",
    }.get(how)  # fmt: skip
    baseline = (
        f"{treated} at the recording's rate, before resampling and outside the graph, as "
        f'ecgcnn.recording.remove_baseline(x, fs, "{how}") does'
        if treated
        else "baseline as recorded"
    )
    return (
        f"ecgcnn {info['model']['name']} ({info['task']}): input {INPUT_NAME} (batch, "
        f"{len(info['leads'])}, {info['window']}) float32 millivolts at {info['fs']:g} Hz, leads "
        f"{', '.join(info['leads'])}; {baseline}; standardisation is inside the graph; a longer "
        f"record: windows {info['stride']} samples apart, the last aligned to the record's end, "
        f"probabilities aggregated by {info['aggregate']}; metadata_props hold the rest"
    )


def decode_metadata(props: dict[str, str], where: str) -> dict[str, Any]:
    """ONNX metadata_props (JSON values) back into the dict of :func:`onnx_metadata`."""
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
    except json.JSONDecodeError as exc:
        raise EcgcnnError(f"{where}: metadata is not ecgcnn's JSON ({exc})") from None
    found = meta.get("format")
    if isinstance(found, str) and found.startswith("ecgcnn-onnx/") and found not in ONNX_FORMATS:
        by = f", exported by {meta['exported_by']}" if meta.get("exported_by") else ""
        newer = (f"{meta['exported_by']} or newer" if str(meta.get("exported_by", "")).startswith(
                 "ecgcnn ") else "a newer ecgcnn")  # fmt: skip
        raise EcgcnnError(f"{where}: ONNX metadata format {found!r}{by}; this ecgcnn "
                          f"({__version__}) reads {' and '.join(ONNX_FORMATS)}: use {newer}")  # fmt: skip
    if found not in ONNX_FORMATS:
        raise EcgcnnError(
            f"{where}: not an ecgcnn ONNX export (metadata format {meta.get('format')!r}, "
            f"expected {' or '.join(ONNX_FORMATS)}); export one with `ecgcnn export`"
        )
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise EcgcnnError(f"{where}: metadata lacks {', '.join(missing)}")
    return meta


def opset_range() -> tuple[int, int]:
    """The lowest and highest ONNX opset this PyTorch's TorchScript exporter writes (7 and 20 in
    torch 2.x; the exporter's own constants where it has them)."""
    try:
        from torch.onnx import _constants
    except ImportError:
        return 7, 20
    low = getattr(_constants, "ONNX_MIN_OPSET", 7)
    high = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None)
    return int(low), int(high if high is not None else getattr(_constants, "ONNX_MAX_OPSET", 20))


def check_opset(opset: int) -> int:
    """``opset`` if this PyTorch exports it, else the one-line error ``ecgcnn export`` gives."""
    low, high = opset_range()
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise EcgcnnError(
            f"--opset {opset}: this PyTorch ({torch.__version__}) exports ONNX opsets {low} to "
            f"{high}; the default, {DEFAULT_OPSET}, exports every ecgcnn model"
        )
    return opset


def export_onnx(
    checkpoint: str | Path, out: str | Path, opset: int = DEFAULT_OPSET
) -> dict[str, Any]:
    """Export a checkpoint to ONNX (dynamic batch), checked against PyTorch; returns the sidecar."""
    from ecgcnn.checkpoint import load_checkpoint, model_from_checkpoint

    check_opset(opset)  # before the checkpoint is read
    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    return export_model(model, model.meta, out, opset)


def export_model(
    model: nn.Module, meta: dict[str, Any], out: str | Path, opset: int = DEFAULT_OPSET
) -> dict[str, Any]:
    """Export a :class:`~ecgcnn.models.Classifier` described by checkpoint ``meta``."""
    import onnx

    check_opset(opset)
    if Path(out).is_dir():
        raise EcgcnnError(
            f"--out {out} is a folder; give the model's file name, e.g. {Path(out) / 'model.onnx'}"
        )

    info = onnx_metadata(meta)
    n_leads, window = len(info["leads"]), info["window"]
    graph = WithProbabilities(model).eval()
    example = torch.randn(2, n_leads, window, generator=torch.Generator().manual_seed(0)) * 0.5
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript;
        # it still exports these convolutional graphs exactly, without another dependency.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            with _native_stdout_discarded():
                torch.onnx.export(
                    graph, (example,), buf, input_names=[INPUT_NAME],
                    output_names=[LOGITS, PROBABILITIES],
                    dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, LOGITS, PROBABILITIES)},
                    opset_version=opset, do_constant_folding=True, dynamo=False,
                )  # fmt: skip
        except Exception as exc:
            raise EcgcnnError(
                f"ONNX export of model {info['model']['name']!r} at opset {opset} failed "
                f"({_first_line(exc)}){_try_default(opset)}"
            ) from None
    proto = onnx.load_from_string(buf.getvalue())
    proto.doc_string = describe_graph(info)
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    try:
        got, want = _compare(data, model, n_leads, window)
    except Exception as exc:  # onnxruntime without a kernel for an operator at this opset
        raise EcgcnnError(
            f"ONNX export of model {info['model']['name']!r} at opset {opset}: onnxruntime cannot "
            f"run it ({_first_line(exc)}){_try_default(opset)}"
        ) from None
    diff = float(np.abs(got - want).max())
    if not np.allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE):
        raise EcgcnnError(
            f"ONNX export of {info['model']['name']!r} disagrees with PyTorch "
            f"(max abs logit difference {diff:.2e}); file not written"
        )
    sidecar = info | {
        "onnx_file": Path(out).name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "opset": opset,
        "max_abs_diff_vs_pytorch": diff,
    }
    atomic.write_bytes(out, data)
    atomic.write_json(sidecar_path(out), sidecar)
    return sidecar


def _first_line(exc: Exception) -> str:
    """An exception as one short line: its type and the first line of its message, without the
    graph dump torch's exporter appends ("[Caused by the value ...")."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    first = first.split("[Caused by")[0].strip()
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _try_default(opset: int) -> str:
    return f"; the default, --opset {DEFAULT_OPSET}, exports every ecgcnn model" if (
        opset != DEFAULT_OPSET) else ""  # fmt: skip


@contextlib.contextmanager
def _native_stdout_discarded() -> Iterator[None]:
    """Discard what is written to file descriptor 1 meanwhile. When an export fails, the
    TorchScript exporter prints its whole IR graph there from C++ (its logging is left on) before
    it raises; the error says what failed. Where stdout has no descriptor, nothing is redirected."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


class WithProbabilities(nn.Module):
    """The classifier with a second output: sigmoid probabilities beside the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, torch.sigmoid(logits)


def _compare(
    data: bytes, model: nn.Module, n_leads: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of onnxruntime and of PyTorch for a random batch of 3 (not the traced batch size)."""
    session = _session(data, threads=None)
    x = np.random.default_rng(1).normal(scale=0.5, size=(3, n_leads, window)).astype(np.float32)
    got = session.run([LOGITS], {INPUT_NAME: x})[0]
    with torch.inference_mode():
        want = model.eval()(torch.from_numpy(x)).numpy()
    return got, want


def _session(model: str | bytes, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    # Don't spin waiting for work: the records are read by other processes on the same cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def load_onnx_session(path: str | Path, threads: int | None = None) -> tuple[Any, dict[str, Any]]:
    """An onnxruntime session and the model's metadata (embedded, else from the sidecar JSON)."""
    p = Path(path)
    if not p.is_file():
        raise EcgcnnError(f"ONNX model {p} not found")
    try:
        session = _session(str(p), threads)
    except Exception as exc:  # onnxruntime raises its own exception types on a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EcgcnnError(
            f"{p}: neither an ecgcnn checkpoint (a PyTorch zip archive) nor a loadable ONNX model "
            f"({type(exc).__name__}: {first})"
        ) from None
    props = dict(session.get_modelmeta().custom_metadata_map)
    if "format" not in props and sidecar_path(p).is_file():
        try:
            meta = json.loads(sidecar_path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EcgcnnError(f"{sidecar_path(p)}: not readable JSON ({exc})") from None
        props = {k: json.dumps(v) for k, v in meta.items()}
    meta = decode_metadata(props, str(p))
    names = {i.name for i in session.get_inputs()}, {o.name for o in session.get_outputs()}
    if INPUT_NAME not in names[0] or PROBABILITIES not in names[1]:
        raise EcgcnnError(
            f"{p}: expected input {INPUT_NAME!r} and output {PROBABILITIES!r}, "
            f"found {sorted(names[0])} and {sorted(names[1])}"
        )
    return session, meta
