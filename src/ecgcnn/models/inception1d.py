"""inception1d: InceptionTime (Fawaz et al. 2020) as adapted in the PTB-XL benchmark.

Six inception blocks; each runs a 1x1 bottleneck (32 channels) into three convolutions of kernel
sizes ``kernel_size``, ``kernel_size // 2`` and ``kernel_size // 4`` (made odd: 39, 19, 9 for the
published 40), beside a max-pool + 1x1 branch, 32 filters each, concatenated to 128 channels. Every
third block adds a residual shortcut (1x1 convolution + BatchNorm) from the input of the triple.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcnn.errors import EcgcnnError
from ecgcnn.models.layers import ConcatPoolHead, check_kernel_size, conv1d, init_weights
from ecgcnn.models.registry import register_model


class InceptionBlock1d(nn.Module):
    """Bottleneck, three parallel convolutions and a max-pool branch, then BatchNorm + ReLU."""

    def __init__(
        self, in_channels: int, filters: int, kernel_sizes: Sequence[int], bottleneck: int
    ) -> None:
        super().__init__()
        self.bottleneck = conv1d(in_channels, bottleneck, 1) if bottleneck > 0 else nn.Identity()
        width = bottleneck if bottleneck > 0 else in_channels
        self.convs = nn.ModuleList(conv1d(width, filters, k) for k in kernel_sizes)
        self.pool_branch = nn.Sequential(
            nn.MaxPool1d(3, stride=1, padding=1), conv1d(in_channels, filters, 1)
        )
        self.bn_act = nn.Sequential(
            nn.BatchNorm1d((len(kernel_sizes) + 1) * filters), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottled = self.bottleneck(x)
        branches = [conv(bottled) for conv in self.convs] + [self.pool_branch(x)]
        return self.bn_act(torch.cat(branches, dim=1))


class Shortcut1d(nn.Module):
    """Residual connection over three inception blocks: ReLU(out + BN(conv1x1(input)))."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv1d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm1d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, block_input: torch.Tensor, block_output: torch.Tensor) -> torch.Tensor:
        return self.act(block_output + self.bn(self.conv(block_input)))


class InceptionBackbone1d(nn.Module):
    """``depth`` inception blocks, a shortcut around every three when ``residual``."""

    def __init__(
        self,
        in_channels: int,
        kernel_sizes: Sequence[int],
        depth: int,
        bottleneck: int,
        filters: int,
        residual: bool,
    ) -> None:
        super().__init__()
        width = (len(kernel_sizes) + 1) * filters
        self.residual = residual
        self.blocks = nn.ModuleList(
            InceptionBlock1d(in_channels if d == 0 else width, filters, kernel_sizes, bottleneck)
            for d in range(depth)
        )
        # the reference builds the shortcuts even without residual: kept for equal parameter counts
        self.shortcuts = nn.ModuleList(
            Shortcut1d(in_channels if d == 0 else width, width) for d in range(depth // 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_input = x
        for d, block in enumerate(self.blocks):
            x = block(x)
            if self.residual and d % 3 == 2:
                x = self.shortcuts[d // 3](block_input, x)
                block_input = x
        return x


class Inception1d(nn.Module):
    """InceptionTime with the benchmark head; ``kernel_size`` is the largest kernel (40)."""

    def __init__(
        self,
        num_classes: int = 5,
        in_leads: int = 12,
        kernel_size: int = 40,
        depth: int = 6,
        bottleneck: int = 32,
        filters: int = 32,
        residual: bool = True,
        head_hidden: Sequence[int] = (128,),
        head_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        kernel_size = check_kernel_size(kernel_size, minimum=4)
        if depth < 3 or depth % 3:
            raise EcgcnnError(f"inception1d depth must be a positive multiple of 3, got {depth}")
        # even kernels would shift the output by one sample: the reference rounds them down to odd
        kernel_sizes = [k - 1 if k % 2 == 0 else k for k in (kernel_size, kernel_size // 2, kernel_size // 4)]  # fmt: skip
        self.features = InceptionBackbone1d(
            in_leads, kernel_sizes, depth, bottleneck, filters, residual
        )
        self.head = ConcatPoolHead(
            (len(kernel_sizes) + 1) * filters, num_classes, head_hidden, head_dropout
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def inception1d(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return Inception1d(num_classes=num_classes, **kwargs)
