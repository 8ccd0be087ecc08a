"""The model registry: architectures register themselves by name, as in timm."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ecgcnn.errors import EcgcnnError

ModelFn = Callable[..., nn.Module]
_MODELS: dict[str, ModelFn] = {}


def register_model(fn: ModelFn) -> ModelFn:
    """Register ``fn(num_classes, **kwargs) -> nn.Module`` under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """The names of the registered models, sorted: what :func:`create_model`, ``train --model``
    and ``ecgcnn models`` take (a model registered with :func:`register_model` is listed too)."""
    return sorted(_MODELS)


def check_model(name: str) -> str:
    if name not in _MODELS:
        raise EcgcnnError(f"unknown model {name!r}; expected one of {', '.join(list_models())}")
    return name


def create_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build a registered model. Every model takes raw (batch, 12, samples) ECGs in millivolts."""
    if num_classes < 1:
        raise EcgcnnError(f"num_classes must be at least 1, got {num_classes}")
    return _MODELS[check_model(name)](num_classes=num_classes, **kwargs)
