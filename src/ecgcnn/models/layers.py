"""Blocks shared by the benchmark models: conv-bn-act, the concat-pooling head, the weight init.

They follow the reference code of Strodthoff et al. (helme/ecg_ptbxl_benchmarking, built on fastai 1)
so that layer order, bias flags and parameter counts match the published models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcnn.errors import EcgcnnError


def conv1d(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = False
) -> nn.Conv1d:
    """A 1D convolution padded by ``(kernel_size - 1) // 2``: the length is kept for odd kernels."""
    return nn.Conv1d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2,
        bias=bias,
    )


class ConvBnAct(nn.Sequential):
    """Convolution (no bias: the BatchNorm has one), BatchNorm, then the activation when ``act``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            conv1d(in_channels, out_channels, kernel_size, stride),
            nn.BatchNorm1d(out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ConcatPool1d(nn.Module):
    """Adaptive max and average pooling over time, concatenated: (batch, 2 * channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)


class ConcatPoolHead(nn.Sequential):
    """The benchmark head (fastai's ``create_head`` in 1D).

    Concat max+avg pooling, then for each hidden width BatchNorm, Dropout(``dropout / 2``), Linear,
    ReLU, and finally BatchNorm, Dropout(``dropout``), Linear to the classes. With the defaults:
    2C -> 128 -> classes, dropout 0.25 then 0.5, as in the published models.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.5,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise EcgcnnError(f"head dropout must be in [0, 1), got {dropout}")
        widths = [2 * in_channels, *(int(h) for h in hidden), num_classes]
        if min(widths) < 1:
            raise EcgcnnError(f"head widths must be positive, got {list(hidden)}")
        # fastai halves the dropout of every layer but the last
        drops = [dropout / 2] * (len(widths) - 2) + [dropout]
        layers: list[nn.Module] = [ConcatPool1d()]
        for i, (n_in, n_out, p) in enumerate(zip(widths[:-1], widths[1:], drops, strict=True)):
            layers.append(nn.BatchNorm1d(n_in))
            if p > 0:
                layers.append(nn.Dropout(p))
            layers.append(nn.Linear(n_in, n_out))
            if i < len(widths) - 2:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def init_weights(module: nn.Module) -> None:
    """The reference's ``weight_init``: Kaiming-normal convolutions and linears, zero biases, unit BN.

    The reference applies it to the whole model before training, which also overrides fastai's
    zero-initialised last BatchNorm of each xresnet block; we do the same to train the same model.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_kernel_size(kernel_size: int, minimum: int = 1) -> int:
    if int(kernel_size) != kernel_size or kernel_size < minimum:
        raise EcgcnnError(f"kernel_size must be an integer >= {minimum}, got {kernel_size!r}")
    return int(kernel_size)
