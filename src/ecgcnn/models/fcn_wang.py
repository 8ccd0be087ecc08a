"""fcn_wang: the fully convolutional network of Wang et al. (2017) as adapted in the PTB-XL benchmark.

Three conv-BN-ReLU layers (128, 256, 128 channels; kernels 8, 5, 3; stride 1, no pooling) and the
concat-pooling head in place of the original global average pooling and softmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcnn.models.layers import ConcatPoolHead, ConvBnAct, init_weights
from ecgcnn.models.registry import register_model

CHANNELS = (128, 256, 128)
KERNEL_SIZES = (8, 5, 3)


class FCNWang(nn.Module):
    """Three convolution blocks and the benchmark head."""

    def __init__(
        self,
        num_classes: int = 5,
        in_leads: int = 12,
        head_hidden: Sequence[int] = (128,),
        head_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        widths = [in_leads, *CHANNELS]
        # kernel 8 is padded by 3 on both sides, so each record loses one sample, as in the reference
        self.features = nn.Sequential(
            *(ConvBnAct(widths[i], widths[i + 1], k) for i, k in enumerate(KERNEL_SIZES))
        )
        self.head = ConcatPoolHead(CHANNELS[-1], num_classes, head_hidden, head_dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def fcn_wang(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return FCNWang(num_classes=num_classes, **kwargs)
