"""Training-time augmentation of ECG batches: amplitude, baseline wander, lead dropout, mixup,
label smoothing.

With ~1,300 training records (the development data, or a small hospital set) a benchmark-grade
network over-fits long before 30 epochs; these perturbations keep what a cardiologist reads (the
shape and timing of every beat) and change what varies between devices, electrodes and patients:
- amplitude: each lead of each record scaled by ``exp(N(0, scale_std))`` (electrode contact, body habitus);
- baseline wander: a random sinusoid below 0.5 Hz on each lead (breathing, movement), in mV;
- lead dropout: each lead of each record zeroed with probability ``lead_dropout`` (a detached electrode);
- mixup (Zhang et al. 2018): each record mixed with another of the batch, ``lam ~ Beta(a, a)``,
  labels mixed with the same weight;
- label smoothing (Szegedy et al. 2016, for multi-label BCE): every target ``t`` becomes
  ``t (1 - e) + e / 2``, so no output is pushed towards 0 or 1 on a label a reader might dispute.

Everything works on a whole batch at once (raw mV, before the model's standardisation) with the
dataset's generator, so a seeded run draws the same perturbations again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from ecgcnn.errors import EcgcnnError


@dataclass(frozen=True)
class Augment:
    """How to perturb a training batch; every setting 0 means off."""

    noise_std: float = 0.0  # Gaussian noise, mV
    scale_std: float = 0.0  # log-amplitude jitter per lead
    wander_mv: float = 0.0  # peak amplitude of the baseline wander, mV
    lead_dropout: float = 0.0  # probability of zeroing a lead
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing weights
    label_smoothing: float = 0.0  # targets moved this far towards 1/2 (after mixup)

    def __post_init__(self) -> None:
        for name in self.settings():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EcgcnnError(f"augmentation {name} must be a number, got {value!r}")
        for name in ("noise_std", "scale_std", "wander_mv", "mixup_alpha"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise EcgcnnError(f"augmentation {name} must be a number >= 0, got {value!r}")
        for name in ("lead_dropout", "label_smoothing"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise EcgcnnError(f"{name} must be in [0, 1), got {value!r}")

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in self.settings())

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        fs: float = 100.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Perturb a batch ``x`` (records, leads, samples) in mV and its labels ``y`` (records, classes)."""
        records, leads, samples = x.shape
        if self.scale_std > 0:
            x = x * torch.exp(self.scale_std * torch.randn(records, leads, 1, generator=generator))
        if self.wander_mv > 0:
            x = x + baseline_wander(records, leads, samples, fs, self.wander_mv, generator)
        if self.noise_std > 0:
            x = x + self.noise_std * torch.randn(x.shape, generator=generator)
        if self.lead_dropout > 0:
            keep = torch.rand(records, leads, 1, generator=generator) >= self.lead_dropout
            x = x * keep
        if self.mixup_alpha > 0 and records > 1:
            x, y = mixup(x, y, self.mixup_alpha, generator)
        if self.label_smoothing > 0:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / 2
        return x, y


def baseline_wander(
    records: int,
    leads: int,
    samples: int,
    fs: float,
    amplitude: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A sinusoid of 0.05-0.5 Hz, random phase and amplitude up to ``amplitude`` mV per lead."""
    shape = (records, leads, 1)
    freq = 0.05 + 0.45 * torch.rand(shape, generator=generator)
    phase = 2 * math.pi * torch.rand(shape, generator=generator)
    amp = amplitude * torch.rand(shape, generator=generator)
    t = torch.arange(samples, dtype=torch.float32) / fs
    return amp * torch.sin(2 * math.pi * freq * t + phase)


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each record with a random partner of the batch (weights from Beta(alpha, alpha))."""
    records = len(x)
    # torch's Beta takes no generator: a NumPy one seeded from the batch's keeps runs reproducible
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, records)).float()
    # the larger weight on the record itself, so its labels stay the dominant ones
    lam = torch.maximum(lam, 1 - lam)
    partner = torch.randperm(records, generator=generator)
    x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[partner]
    y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
    return x, y
