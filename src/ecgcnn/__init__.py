"""ecgcnn: convolutional neural networks for 12-lead ECG classification on PTB-XL."""

from __future__ import annotations

__version__ = "0.1.0"

from ecgcnn.checkpoint import load_checkpoint, load_model  # noqa: E402
from ecgcnn.models import create_model, list_models, register_model  # noqa: E402

__all__ = [
    "__version__",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_model",
    "register_model",
]
