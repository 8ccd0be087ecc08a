"""resnet1d_wang: the 1D ResNet of Wang et al. (2017) as adapted in the PTB-XL benchmark.

A stem convolution (kernel 7, stride 1, 128 channels, no pooling), three basic residual blocks of
128 channels (kernels 5 then 3; the second and third at stride 2 with a 1x1 strided projection
shortcut), and the concat-pooling head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcnn.models.layers import ConcatPoolHead, ConvBnAct, check_kernel_size, init_weights
from ecgcnn.models.registry import register_model


class BasicBlock1d(nn.Module):
    """Two convolutions (kernels ``k`` and ``k // 2 + 1``) with an identity or projection shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int, kernel_size: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            ConvBnAct(in_channels, channels, kernel_size, stride),
            ConvBnAct(channels, channels, kernel_size // 2 + 1, act=False),
        )
        if stride != 1 or in_channels != channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv1d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm1d(channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class ResNet1dWang(nn.Module):
    """Stem, ``blocks`` basic blocks of ``channels`` (stride 1, then 2), concat-pooling head."""

    def __init__(
        self,
        num_classes: int = 5,
        in_leads: int = 12,
        channels: int = 128,
        blocks: int = 3,
        kernel_size: int = 5,
        kernel_size_stem: int = 7,
        head_hidden: Sequence[int] = (128,),
        head_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        kernel_size = check_kernel_size(kernel_size)
        kernel_size_stem = check_kernel_size(kernel_size_stem)
        self.features = nn.Sequential(
            ConvBnAct(in_leads, channels, kernel_size_stem),
            *(
                BasicBlock1d(channels, channels, 1 if i == 0 else 2, kernel_size)
                for i in range(blocks)
            ),
        )
        self.head = ConcatPoolHead(channels, num_classes, head_hidden, head_dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def resnet1d_wang(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return ResNet1dWang(num_classes=num_classes, **kwargs)
