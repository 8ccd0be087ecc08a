"""The original repository's models, layer for layer: SimpleCNN1D and SimpleCNN2D."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ecgcnn.models.registry import register_model


class SimpleCNN1D(nn.Module):
    """Three conv1d blocks, global average pooling and a two-layer head (46,757 parameters for 5 classes)."""

    def __init__(self, num_classes: int = 5, in_leads: int = 12) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(in_leads, 32, kernel_size=7, stride=2, padding=3),
            nn.BatchNorm1d(32),
            nn.ReLU(inplace=True),
            nn.Conv1d(32, 64, kernel_size=5, stride=2, padding=2),
            nn.BatchNorm1d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(2),
            nn.Conv1d(64, 128, kernel_size=3, padding=1),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Linear(128, 64), nn.Dropout(0.2), nn.ReLU(inplace=True), nn.Linear(64, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=-1))


class ECGImage(nn.Module):
    """Render a (batch, 12, T) ECG as a (batch, 1, 64, 256) image, as the original's preprocessing did.

    Each lead is linearly resampled to 256 columns and repeated over 64 // 12 = 5 rows; leads are
    stacked top to bottom and the 4 remaining rows are zero.
    """

    def __init__(self, height: int = 64, width: int = 256) -> None:
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, leads, _ = x.shape
        rows = self.height // leads
        resampled = F.interpolate(x, size=self.width, mode="linear", align_corners=True)
        image = resampled.repeat_interleave(rows, dim=1)
        pad = self.height - rows * leads
        image = F.pad(image, (0, 0, 0, pad))
        return image.unsqueeze(1)


class SimpleCNN2D(nn.Module):
    """The ECG image through three conv2d blocks and a two-layer head (6,613 parameters for 5 classes)."""

    def __init__(self, num_classes: int = 5, height: int = 64, width: int = 256) -> None:
        super().__init__()
        self.render = ECGImage(height, width)
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Linear(32, 16), nn.Dropout(0.2), nn.ReLU(inplace=True), nn.Linear(16, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.render(x)).mean(dim=(-2, -1)))


@register_model
def cnn1d(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return SimpleCNN1D(num_classes=num_classes, **kwargs)


@register_model
def cnn2d(num_classes: int = 5, **kwargs: object) -> nn.Module:
    return SimpleCNN2D(num_classes=num_classes, **kwargs)
