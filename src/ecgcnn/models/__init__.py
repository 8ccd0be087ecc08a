"""Models: a registry of architectures and the classifier that wraps one with its preprocessing."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcnn.errors import EcgcnnError
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
    "Ensemble",
    "check_model",
    "create_model",
    "list_models",
    "register_model",
    "count_parameters",
    "keep_outputs",
    "build_network",
    "check_members",
    "model_label",
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


class Ensemble(nn.Module):
    """Networks trained apart (``--members K``, each from its own seed) read as one.

    Returns the logit of the members' mean probability, computed in log space
    (``log mean p - log mean (1 - p)``), so confident members neither overflow nor stop the gradient
    that saliency maps follow. Everything that takes logits (windows, thresholds, export) takes it.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise EcgcnnError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([member(x) for member in self.members])
        return torch.logsumexp(_logsigmoid(logits), 0) - torch.logsumexp(_logsigmoid(-logits), 0)


def _logsigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)) as min(x, 0) - log(1 + exp(-|x|)): exact at any size, and in ONNX too, where
    F.logsigmoid is exported as Log(Sigmoid(x)) and gives -inf beyond |x| of about 17 (float32).
    min(x, 0) is written (x - |x|) / 2, whose gradient at 0 is the true 1/2 (clamp's is 1)."""
    magnitude = torch.abs(x)
    return 0.5 * (x - magnitude) - torch.log1p(torch.exp(-magnitude))


def check_members(members: object) -> int:
    """An ensemble size from a recipe or a checkpoint: a whole number of at least 1."""
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise EcgcnnError(f"members must be a whole number of at least 1, got {members!r}")
    return members


def model_label(name: str, members: int = 1) -> str:
    """A model's name for people: ``fcn_wang (2 members)`` for an ensemble."""
    return f"{name} ({members} members)" if members > 1 else name


def build_network(name: str, num_classes: int, members: int = 1, **kwargs: object) -> nn.Module:
    """A registered network, or an ``Ensemble`` of ``members`` of them."""
    if check_members(members) == 1:
        return create_model(name, num_classes, **kwargs)
    return Ensemble([create_model(name, num_classes, **kwargs) for _ in range(members)])


def keep_outputs(net: nn.Module, n: int, total: int | None = None) -> nn.Module:
    """Cut ``net``'s output layer (its last ``nn.Linear``) to its first ``n`` outputs, in place.

    A network trained with auxiliary outputs (``--aux-task``) becomes an ordinary ``n``-class network
    whose first ``n`` logits are unchanged, so checkpoints, prediction and export never see the extras.
    """
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise EcgcnnError(f"{type(net).__name__} has no linear output layer to cut")
    last = linears[-1]
    if total is not None and last.out_features != total:
        raise EcgcnnError(
            f"{type(net).__name__}'s last linear layer has {last.out_features} outputs, not the "
            f"network's {total}: it is not the output layer"
        )
    if not 0 < n <= last.out_features:
        raise EcgcnnError(f"cannot keep {n} of the output layer's {last.out_features} outputs")
    with torch.no_grad():
        last.weight = nn.Parameter(last.weight[:n].clone())
        if last.bias is not None:
            last.bias = nn.Parameter(last.bias[:n].clone())
    last.out_features = n
    return net
