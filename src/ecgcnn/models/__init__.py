"""Models: a registry of architectures and the classifier that wraps one with its preprocessing."""

from __future__ import annotations

import torch
from torch import nn

from ecgcnn.models import (
    fcn_wang,  # noqa: F401  (registers fcn_wang)
    inception1d,  # noqa: F401  (registers inception1d)
    resnet1d_wang,  # noqa: F401  (registers resnet1d_wang)
    simple_cnn,  # noqa: F401  (registers cnn1d, cnn2d)
    xresnet1d,  # noqa: F401  (registers xresnet1d18/34/50/101)
)
from ecgcnn.models.registry import check_model, create_model, list_models, register_model

__all__ = [
    "Classifier",
    "check_model",
    "create_model",
    "list_models",
    "register_model",
    "count_parameters",
]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Classifier(nn.Module):
    """A registered network behind per-lead standardisation (fitted on the training records).

    Takes raw ECGs in millivolts, (batch, leads, samples), and returns logits; the mean and std
    are buffers, so they travel with the state dict and with an exported graph.
    """

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.reshape(1, -1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
