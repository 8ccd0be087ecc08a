"""ecgcnn: convolutional neural networks for 12-lead ECG classification on PTB-XL."""

from __future__ import annotations

import importlib as _importlib
import importlib.util as _importlib_util
from typing import TYPE_CHECKING

__version__ = "0.2.0"  # also the package's (pyproject reads it)

# Each public name loads its module on first use, so `import ecgcnn` (and `ecgcnn --version` or
# `--help`) does not pay for torch and the recording stack (wfdb, scipy, pandas): seconds on a CPU.
_LAZY = {
    "create_model": "ecgcnn.models",
    "list_models": "ecgcnn.models",
    "register_model": "ecgcnn.models",
    "load_checkpoint": "ecgcnn.checkpoint",
    "load_model": "ecgcnn.checkpoint",
    "Predictor": "ecgcnn.predict",
    "Prediction": "ecgcnn.predict",
}

if TYPE_CHECKING:  # what type checkers and editors see; nothing is imported at run time
    from ecgcnn.checkpoint import load_checkpoint, load_model
    from ecgcnn.models import create_model, list_models, register_model
    from ecgcnn.predict import Prediction, Predictor


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    # a submodule, as in `import ecgcnn; ecgcnn.models.Ensemble`
    if not name.startswith("_") and _importlib_util.find_spec(f"{__name__}.{name}") is not None:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ecgcnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY} - {"TYPE_CHECKING", "annotations"})


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
