"""Training recipes: named sets of defaults that any command-line flag may override."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ecgcnn.errors import EcgcnnError


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
    max_pos_weight: float = (
        100.0  # clamp for a class with (almost) no positives in the training fold
    )

    def with_overrides(self, **overrides: object) -> Recipe:
        """This recipe with every non-None override applied."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise EcgcnnError(f"unknown recipe setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


# "seed": the original repository's defaults (10 epochs, batch 16, Adam 1e-3, class-weighted BCE).
RECIPES: dict[str, Recipe] = {"seed": Recipe("seed")}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise EcgcnnError(f"unknown recipe {name!r}; expected one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
