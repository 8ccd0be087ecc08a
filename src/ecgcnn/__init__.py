"""ecgcnn: convolutional neural networks for 12-lead ECG classification on PTB-XL."""

from __future__ import annotations

__version__ = "0.2.0"  # also the package's (pyproject reads it)

from ecgcnn.checkpoint import load_checkpoint, load_model  # noqa: E402
from ecgcnn.models import create_model, list_models, register_model  # noqa: E402

# Loaded on first use: the prediction stack (wfdb, scipy, pandas) need not slow every import.
_LAZY = {"Predictor": "ecgcnn.predict", "Prediction": "ecgcnn.predict"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ecgcnn' has no attribute {name!r}")


__all__ = [
    "Prediction",
    "Predictor",
    "__version__",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_model",
    "register_model",
]
