"""Self-describing checkpoints: the weights plus everything needed to use them.

A checkpoint is a plain dict of tensors, numbers, strings and lists, saved atomically with
``torch.save`` and loaded with ``torch.load(weights_only=True)``, so loading never unpickles code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ecgcnn import __version__, atomic
from ecgcnn.errors import EcgcnnError
from ecgcnn.models import Classifier, build_network, check_members
from ecgcnn.recording import checkpoint_baseline

FORMAT = "ecgcnn-checkpoint/1"
# /2: the model learnt records whose baseline was treated (meta["baseline"] other than "keep"), which
# the records it scores need too. An ecgcnn older than the setting reads /1 only, so it refuses such a
# checkpoint instead of scoring unfiltered records with it; a model that learnt records as recorded
# stays /1, readable by every version.
FORMAT_TREATED_BASELINE = "ecgcnn-checkpoint/2"
FORMATS = (FORMAT, FORMAT_TREATED_BASELINE)


def checkpoint_format(meta: dict[str, Any]) -> str:
    """The format a checkpoint with this metadata is written in (see FORMAT_TREATED_BASELINE)."""
    return FORMAT if checkpoint_baseline(meta) == "keep" else FORMAT_TREATED_BASELINE


def save_checkpoint(path: str | Path, model: Classifier, meta: dict[str, Any]) -> None:
    """Write ``model`` and its metadata (see ``build_meta`` in train) atomically."""
    payload = {"format": checkpoint_format(meta), "version": __version__, **meta,
               "state_dict": model.state_dict()}  # fmt: skip
    atomic.write_with(path, lambda f: torch.save(payload, f))


# How torch's safe unpickler words a broken byte stream, as opposed to an object it refuses.
STREAM_DAMAGE = ("Unsupported operand", "String is too long", "Ran out of input", "EOFError",
                 "Can only append to lists", "Can only SETITEMS", "Can only extend lists")  # fmt: skip


def resolve_device(device: str | torch.device, what: str = "device") -> torch.device:
    """``device`` as a torch.device, ``auto`` being cuda where there is a GPU and cpu elsewhere; a
    device this machine lacks (CUDA without a GPU or a CUDA build of PyTorch, a GPU index past the
    ones visible, MPS off a Mac) is a one-line EcgcnnError naming ``what`` asked for it."""
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise EcgcnnError(f"{what} {device!r}: expected auto, cpu, cuda or cuda:N") from None
    name = str(dev)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this PyTorch is built without CUDA" if torch.version.cuda is None
                   else "no CUDA GPU is visible")  # fmt: skip
            raise EcgcnnError(f"{what} {name!r}: CUDA is not available ({why}, PyTorch "
                              f"{torch.__version__}); use cpu, or auto")  # fmt: skip
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise EcgcnnError(f"{what} {name!r}: no such GPU ({count} visible: cuda:0 to "
                              f"cuda:{count - 1})")  # fmt: skip
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise EcgcnnError(f"{what} {name!r}: MPS is not available on this machine; use cpu")
    return dev


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict, loaded safely (no arbitrary objects); its tensors on ``map_location``
    (see :func:`resolve_device`)."""
    map_location = resolve_device(map_location, "map_location")
    path = Path(path)
    if path.is_dir():
        found = " (it holds checkpoint.pt)" if (path / "checkpoint.pt").is_file() else ""
        raise EcgcnnError(f"checkpoint {path} is a folder{found}; give the checkpoint file, "
                          "as in FOLDER/checkpoint.pt")  # fmt: skip
    if not path.is_file():
        raise EcgcnnError(f"checkpoint {path} not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; ONNX is protobuf
        hint = (
            ": it looks like an ONNX model, which predict and serve take (explain, evaluate and "
            "export need the checkpoint.pt it came from)"
            if _looks_like_onnx(path)
            else ""
        )
        raise EcgcnnError(f"{path}: not a loadable ecgcnn checkpoint (not a PyTorch file){hint}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's message goes on to say how to load it unsafely
        damage = [line.strip() for line in str(exc).splitlines()  # not a global's name
                  if any(sign in line for sign in STREAM_DAMAGE) and "GLOBAL" not in line]  # fmt: skip
        if damage:
            problem = f"damaged: unpickling failed ({damage[0]})"
        else:  # a global, a class, a reduce call the safe unpickler refuses
            problem = ("it holds Python objects beyond tensors and plain data, which ecgcnn never "
                       "unpickles")  # fmt: skip
        raise EcgcnnError(f"{path}: not a loadable ecgcnn checkpoint ({problem})") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EcgcnnError(
            f"{path}: not a loadable ecgcnn checkpoint ({type(exc).__name__}: {first})"
        ) from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(found, str) and found.startswith("ecgcnn-checkpoint/") and found not in FORMATS:
        by = f", written by ecgcnn {payload['version']}" if payload.get("version") else ""
        newer = (
            f"ecgcnn {payload['version']} or newer" if payload.get("version") else "a newer ecgcnn"
        )
        raise EcgcnnError(f"{path}: checkpoint format {found!r}{by}; this ecgcnn ({__version__}) "
                          f"reads {' and '.join(FORMATS)}: use {newer}")  # fmt: skip
    if found not in FORMATS:
        raise EcgcnnError(
            f"{path}: not an ecgcnn checkpoint (expected format {' or '.join(FORMATS)})"
        )
    return payload


def _looks_like_onnx(path: Path) -> bool:
    """An ONNX ModelProto starts with field 1 (ir_version, a varint) and names its producer early."""
    with open(path, "rb") as f:
        head = f.read(256)
    return head[:1] == b"\x08" and (b"pytorch" in head or b"onnx" in head.lower())


def model_from_checkpoint(payload: dict[str, Any], source: str = "checkpoint") -> Classifier:
    """The model a checkpoint describes, in eval mode, with ``model.meta``; ``source`` names it in errors."""
    arch = payload["model"]
    try:
        members = check_members(arch.get("members", 1))
    except EcgcnnError as exc:
        raise EcgcnnError(f"{source}: model {exc}") from None
    net = build_network(arch["name"], len(payload["classes"]), members, **arch.get("kwargs", {}))
    pre = payload["preprocess"]
    model = Classifier(net, torch.tensor(pre["mean"]), torch.tensor(pre["std"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise EcgcnnError(
            f"{source}: the weights do not fit the model it names ({arch['name']}, "
            f"{members} member(s)): {first}"
        ) from None
    model.eval()
    model.meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> Classifier:
    """Load a trained model in eval mode on ``map_location`` (cpu, cuda, cuda:N, or auto: cuda where
    there is a GPU); ``model.meta`` holds classes, rate, thresholds and more."""
    device = resolve_device(map_location, "map_location")
    return model_from_checkpoint(load_checkpoint(path, device), str(path)).to(device)
