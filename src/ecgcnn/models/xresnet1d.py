"""xresnet1d: fastai's xresnet ("bag of tricks" ResNet) in 1D, as in the PTB-XL benchmark.

Stem of three convolutions (32, 32, 64 channels, the first with stride 2) and a max pool, four
stages of residual blocks, the first at stride 1 and the others at stride 2, and the concat-pooling
head. As in the benchmark every stage keeps 64 channels (times the expansion of 4 for the
bottleneck depths 50 and 101); fastai's image widths 64 -> 512 would give xresnet1d101 about 33.6M
parameters instead of 1.87M. Shortcuts average-pool before a 1x1 convolution (the "D" trick).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcnn.models.layers import ConcatPoolHead, ConvBnAct, check_kernel_size, init_weights
from ecgcnn.models.registry import register_model

STEM_CHANNELS = (32, 32, 64)
STAGE_CHANNELS = 64


class XResBlock1d(nn.Module):
    """Residual block: two k-convolutions (expansion 1) or 1-k-1 bottleneck (expansion 4)."""

    def __init__(
        self, expansion: int, in_channels: int, channels: int, stride: int, kernel_size: int
    ) -> None:
        super().__init__()
        n_in, n_out = in_channels * expansion, channels * expansion
        if expansion == 1:
            convs = [
                ConvBnAct(n_in, channels, kernel_size, stride),
                ConvBnAct(channels, n_out, kernel_size, act=False),
            ]
        else:
            convs = [
                ConvBnAct(n_in, channels, 1),
                ConvBnAct(channels, channels, kernel_size, stride),
                ConvBnAct(channels, n_out, 1, act=False),
            ]
        self.convs = nn.Sequential(*convs)
        shortcut: list[nn.Module] = []
        if stride != 1:
            # ceil_mode keeps the shortcut as long as the strided convolution's output
            shortcut.append(nn.AvgPool1d(2, ceil_mode=True))
        if n_in != n_out:
            shortcut.append(ConvBnAct(n_in, n_out, 1, act=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class XResNet1d(nn.Module):
    """xresnet1d of the benchmark: ``depths`` blocks per stage, ``expansion`` 1 or 4."""

    def __init__(
        self,
        expansion: int,
        depths: Sequence[int],
        num_classes: int = 5,
        in_leads: int = 12,
        kernel_size: int = 5,
        kernel_size_stem: int = 5,
        head_hidden: Sequence[int] = (128,),
        head_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        kernel_size = check_kernel_size(kernel_size)
        kernel_size_stem = check_kernel_size(kernel_size_stem)
        widths = [in_leads, *STEM_CHANNELS]
        stem = [
            ConvBnAct(widths[i], widths[i + 1], kernel_size_stem, stride=2 if i == 0 else 1)
            for i in range(len(STEM_CHANNELS))
        ]
        # the first stage takes the stem's 64 channels, i.e. 64 // expansion before expanding
        channels = [STEM_CHANNELS[-1] // expansion] + [STAGE_CHANNELS] * len(depths)
        stages = []
        for i, depth in enumerate(depths):
            blocks = [
                XResBlock1d(
                    expansion,
                    channels[i] if b == 0 else channels[i + 1],
                    channels[i + 1],
                    stride=(1 if i == 0 else 2) if b == 0 else 1,
                    kernel_size=kernel_size,
                )
                for b in range(depth)
            ]
            stages.append(nn.Sequential(*blocks))
        self.features = nn.Sequential(
            *stem, nn.MaxPool1d(kernel_size=3, stride=2, padding=1), *stages
        )
        self.head = ConcatPoolHead(channels[-1] * expansion, num_classes, head_hidden, head_dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def xresnet1d18(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return XResNet1d(1, (2, 2, 2, 2), num_classes=num_classes, **kwargs)


@register_model
def xresnet1d34(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return XResNet1d(1, (3, 4, 6, 3), num_classes=num_classes, **kwargs)


@register_model
def xresnet1d50(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return XResNet1d(4, (3, 4, 6, 3), num_classes=num_classes, **kwargs)


@register_model
def xresnet1d101(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return XResNet1d(4, (3, 4, 23, 3), num_classes=num_classes, **kwargs)
