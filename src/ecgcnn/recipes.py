"""Training recipes: named sets of defaults that any command-line flag may override."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ecgcnn.augment import Augment
from ecgcnn.errors import EcgcnnError
from ecgcnn.labels import check_task
from ecgcnn.models import check_members
from ecgcnn.recording import BASELINES


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, schedule, loss and augmentation."""

    name: str
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    class_weighted: bool = True
    noise_std: float = 0.02  # Gaussian noise (mV) added to training samples
    select_best: bool = True  # keep the epoch with the best validation macro PR-AUC
    # pos_weight clamp, for a class with (almost) no positives in the training fold
    max_pos_weight: float = 100.0
    schedule: str = "constant"  # or "onecycle" (lr is then the peak learning rate)
    window_s: float | None = None  # train on random windows of this many seconds (None: whole)
    stride_s: float | None = None  # test-time sliding-window stride (default: half the window)
    aggregate: str = "max"  # how window probabilities combine into a record's: max or mean
    # augmentation of training batches (ecgcnn.augment); 0 is off
    scale_std: float = 0.0  # log-amplitude jitter per lead
    wander_mv: float = 0.0  # baseline wander up to this many mV
    lead_dropout: float = 0.0  # probability of zeroing a lead
    mixup_alpha: float = 0.0  # mixup with Beta(alpha, alpha) weights
    label_smoothing: float = 0.0  # training targets moved this far towards 1/2
    # evaluate and keep an exponential moving average of the weights (per step); 0 is off
    ema_decay: float = 0.0
    # also train on this task's labels as extra outputs, cut off after training (e.g. superdiagnostic
    # classes learnt beside their diagnostic statements); None is off
    aux_task: str | None = None
    # train this many networks one after another, each from its own seed, and average their
    # probabilities (an ensemble: K times the training time and parameters); 1 is a single network
    members: int = 1
    # each lead's baseline in the records the model learns from (and is scored on): as recorded
    # (keep, the published recipe), median subtracted, or high-pass filtered (ecgcnn.recording)
    baseline: str = "keep"

    @classmethod
    def from_dict(cls, values: dict, source: str = "the recipe") -> Recipe:
        """A recipe saved by ``to_dict`` (settings added since then take their defaults)."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown or "name" not in values:
            raise EcgcnnError(
                f"{source}: recipe has unknown setting(s) {', '.join(sorted(unknown)) or '(no name)'}; "
                "was it written by a newer ecgcnn?"
            )
        return cls(**values)

    def with_overrides(self, **overrides: object) -> Recipe:
        """This recipe with every non-None override applied."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise EcgcnnError(f"unknown recipe setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise EcgcnnError(
                "epochs and batch size must be at least 1 and the learning rate positive"
            )
        if not self.weight_decay >= 0:  # torch's own refusal would come after the data is read
            raise EcgcnnError(f"weight decay must be a number >= 0, got {self.weight_decay}")
        if self.optimizer not in ("adam", "adamw"):
            raise EcgcnnError(f"unknown optimizer {self.optimizer!r}; expected adam or adamw")
        if self.schedule not in ("constant", "onecycle"):
            raise EcgcnnError(f"unknown schedule {self.schedule!r}; expected constant or onecycle")
        if self.aggregate not in ("max", "mean"):
            raise EcgcnnError(f"unknown aggregate {self.aggregate!r}; expected max or mean")
        self.augment()  # checks its settings
        if self.aux_task is not None:
            check_task(self.aux_task)
        check_members(self.members)
        if self.baseline not in BASELINES:
            raise EcgcnnError(
                f"unknown baseline {self.baseline!r}; expected one of {', '.join(BASELINES)}"
            )
        if not 0 <= self.ema_decay < 1:
            raise EcgcnnError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("window_s", "stride_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise EcgcnnError(f"{name} must be positive, got {value}")

    def augment(self) -> Augment:
        """The batch augmentation this recipe trains with."""
        return Augment(
            noise_std=self.noise_std,
            scale_std=self.scale_std,
            wander_mv=self.wander_mv,
            lead_dropout=self.lead_dropout,
            mixup_alpha=self.mixup_alpha,
            label_smoothing=self.label_smoothing,
        )

    def to_dict(self) -> dict:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    # The original repository's defaults: 10 epochs, batch 16, Adam 1e-3, class-weighted BCE, best epoch.
    "seed": Recipe("seed"),
    # Strodthoff et al. 2020: random 2.5 s windows, AdamW (wd 1e-2) with a one-cycle schedule peaking at
    # 1e-2, batch 128, 50 epochs, plain BCE, final epoch kept; at test time 2.5 s windows every 1.25 s,
    # aggregated by max.
    "benchmark": Recipe(
        "benchmark",
        epochs=50,
        batch_size=128,
        lr=1e-2,
        optimizer="adamw",
        weight_decay=1e-2,
        class_weighted=False,
        noise_std=0.0,
        select_best=False,
        schedule="onecycle",
        window_s=2.5,
        stride_s=1.25,
        aggregate="max",
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise EcgcnnError(f"unknown recipe {name!r}; expected one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
