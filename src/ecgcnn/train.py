"""Training: one run is one folder, with one sub-folder per fold.

::

    runs/NAME/
      config.json            resolved settings (recipe + overrides), classes, the version that began
                             the run (continued_by: later versions that resumed it)
      splits.json            fold of every ecg_id, sizes and label counts per part
      fold_0/                (or benchmark/ for the benchmark protocol)
        checkpoint.pt        self-describing, see ecgcnn.checkpoint
        history.json         loss and validation metrics per epoch
        predictions_val.npz  y_true, y_prob, ecg_ids of the validation records
        metrics.json         validation metrics at the stored thresholds
        predictions_test.npz, metrics_test.json   when a holdout / test fold is set
      cv_results.json        every fold and mean +- std of each metric
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from ecgcnn import __version__, atomic
from ecgcnn.cache import Signals, load_signals
from ecgcnn.checkpoint import load_checkpoint, resolve_device, save_checkpoint
from ecgcnn.dataset import RecordDataset, collate_batch, standardization
from ecgcnn.distributed import (
    World,
    broadcast_buffers,
    device_for,
    gather_rows,
    init_world,
    reseed_for_rank,
    shard,
    shutdown,
)
from ecgcnn.errors import EcgcnnError
from ecgcnn.evaluate import predict_proba
from ecgcnn.labels import Labels, check_task, make_labels
from ecgcnn.metrics import compute_metrics, summarize, tune_thresholds
from ecgcnn.models import Classifier, Ensemble, check_model, create_model, keep_outputs
from ecgcnn.recipes import Recipe, get_recipe
from ecgcnn.records import LEADS, Database, check_rate, load_database, require_strat_folds
from ecgcnn.saved import read_json, read_predictions
from ecgcnn.splits import (
    PROTOCOLS,
    Split,
    benchmark_split,
    cv_folds,
    cv_splits,
    describe,
    patient_leaks,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a run needs; written to config.json as resolved."""

    data_root: str
    out: str
    model: str = "cnn1d"
    task: str = "top5"
    protocol: str = "cv"
    folds: int = 5
    seed: int = 42
    fs: int = 100
    recipe: Recipe = field(default_factory=lambda: get_recipe("seed"))
    holdout_fold: int | None = None
    only_fold: int | None = None
    train_folds: list[int] = field(default_factory=lambda: list(range(1, 9)))
    val_fold: int = 9
    test_fold: int = 10
    skip_missing: bool = False
    cache_dir: str | None = None
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        check_model(self.model)
        check_task(self.task)
        check_rate(self.fs)
        if self.protocol not in PROTOCOLS:
            raise EcgcnnError(
                f"unknown protocol {self.protocol!r}; expected one of {', '.join(PROTOCOLS)}"
            )
        n_folds = self.folds if self.protocol == "cv" else 1
        if self.only_fold is not None and not 0 <= self.only_fold < n_folds:
            raise EcgcnnError(f"--only-fold {self.only_fold} is not a fold of 0..{n_folds - 1}")
        if self.holdout_fold is not None and self.protocol != "cv":
            raise EcgcnnError(
                "--holdout-fold applies to --protocol cv; the benchmark split has --test-fold"
            )
        self.recipe.validate()
        resolve_device(self.device, "--device")  # a typo or a missing GPU: before any data is read
        if self.recipe.aux_task == self.task:
            raise EcgcnnError(f"--aux-task {self.task} is the task itself; choose another task")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recipe"] = self.recipe.to_dict()
        return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Prepared:
    """The data of a run: labels of the usable records, their rows in the cache, and the splits.

    ``aux`` holds the same records' labels in the recipe's ``aux_task`` (extra training targets).
    """

    labels: Labels
    signals: Signals
    cache_rows: np.ndarray
    patient_ids: np.ndarray
    strat_fold: np.ndarray
    splits: list[Split]
    aux: Labels | None = None


def prepare(cfg: TrainConfig) -> Prepared:
    """Read the root (through the cache), build labels and splits as ``cfg`` says."""
    db = load_database(cfg.data_root)
    if cfg.protocol == "benchmark" or cfg.holdout_fold is not None:  # before the records are read
        why = "--protocol benchmark" if cfg.protocol == "benchmark" else "--holdout-fold"
        require_strat_folds(db, db.records.index.to_numpy(), why)
    if cfg.protocol == "benchmark":  # a fold without any record: said before the records are read
        benchmark_split(db.records["strat_fold"].to_numpy(), cfg.train_folds, cfg.val_fold,
                        cfg.test_fold)  # fmt: skip
    signals = load_signals(db, cfg.fs, cfg.cache_dir, cfg.skip_missing, cfg.progress,
                           baseline=cfg.recipe.baseline)  # fmt: skip
    labels = make_labels(db, cfg.task)
    keep = np.isin(labels.ecg_ids, signals.ecg_ids)
    labels = Labels(labels.task, labels.classes, labels.ecg_ids[keep], labels.y[keep])
    records = db.records.loc[labels.ecg_ids]
    patient_ids = records["patient_id"].to_numpy()
    strat_fold = records["strat_fold"].to_numpy()
    if cfg.protocol == "benchmark":
        splits = [benchmark_split(strat_fold, cfg.train_folds, cfg.val_fold, cfg.test_fold)]
    else:
        in_cv = np.ones(len(labels.ecg_ids), dtype=bool)
        test = None
        if cfg.holdout_fold is not None:
            in_cv = strat_fold != cfg.holdout_fold
            test = np.flatnonzero(~in_cv)
            if len(test) == 0:
                raise EcgcnnError(
                    f"--holdout-fold {cfg.holdout_fold} holds no records in {db.root}"
                )
        cv_rows = np.flatnonzero(in_cv)
        folds = cv_folds(patient_ids[cv_rows], labels.y[cv_rows], cfg.folds, cfg.seed)
        splits = [
            Split(s.name, cv_rows[s.train], cv_rows[s.val], s.test)
            for s in cv_splits(folds, cfg.folds, test)
        ]
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun every rank prepares
    if main_rank and (cfg.protocol == "benchmark" or cfg.holdout_fold is not None):
        for parts, patients in patient_leaks(patient_ids, splits[0]).items():
            log.warning("%d patient(s) have records in both %s strat_folds (e.g. patient %s): the "
                        "%s figures are optimistic (PTB-XL's strat_folds keep each patient in one "
                        "fold)", len(patients), parts, sorted(patients)[0],
                        parts.split(" and ")[0])  # fmt: skip
    aux = None if cfg.recipe.aux_task is None else aux_labels(db, cfg.recipe.aux_task, labels)
    return Prepared(
        labels, signals, signals.rows(labels.ecg_ids), patient_ids, strat_fold, splits, aux
    )


def aux_labels(db: Database, task: str, labels: Labels) -> Labels:
    """``task``'s labels for the records of ``labels`` (all zeros for a record without one)."""
    aux = make_labels(db, task)
    y = np.zeros((len(labels.ecg_ids), len(aux.classes)), dtype=np.float32)
    position = {int(e): i for i, e in enumerate(aux.ecg_ids)}
    found = [(row, position[int(e)]) for row, e in enumerate(labels.ecg_ids) if int(e) in position]
    if found:
        rows, source = map(list, zip(*found, strict=True))
        y[rows] = aux.y[source]
    return Labels(task, aux.classes, labels.ecg_ids, y)


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train every fold of a run (or ``cfg.only_fold``) and return cv_results (or that fold's metrics).

    With ``resume``, finished folds (metrics.json present) are not retrained and an interrupted fold
    continues after its last complete epoch; without it, the chosen folds start afresh.
    Under torchrun every rank trains on its share of each batch and rank 0 alone writes files;
    other ranks return an empty dict.
    """
    cfg.validate()
    world = init_world()
    check_same_world(Path(cfg.out), world.size)  # on every rank, before any data is read
    if not world.is_main:
        cfg = dataclasses.replace(cfg, progress=False)
        logging.getLogger("ecgcnn").setLevel(logging.WARNING)
    try:
        return _train(cfg, resume, world)
    finally:
        shutdown(world)


def _train(cfg: TrainConfig, resume: bool, world: World) -> dict[str, Any]:
    out = Path(cfg.out)
    # Rank 0 builds the record cache; the others wait, then open it.
    if world.is_main:
        data = prepare(cfg)
    world.barrier()
    if not world.is_main:
        data = prepare(cfg)
    config = cfg.to_dict() | {
        # absolute, so that the run resumes from any working directory
        "data_root": str(Path(cfg.data_root).resolve()),
        "out": str(out.resolve()),
        "cache_dir": str(Path(cfg.cache_dir).resolve()) if cfg.cache_dir else None,
        "classes": list(data.labels.classes),
        "leads": list(LEADS),
        "version": __version__,
        "fold_names": [s.name for s in data.splits],
    }
    if world.is_main:
        splits = splits_summary(data)
        config |= check_same_run(out / "config.json", config)
        if config["version"] is None:  # begun before 0.2.0: left unrecorded, as it was
            del config["version"]
        check_same_splits(out / "splits.json", splits)
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_json(out / "config.json", config | {"world_size": world.size})
        atomic.write_json(out / "splits.json", splits)
    world.barrier()
    log.info(
        "%d records, %d classes (%s), %s protocol, %d fold(s)",
        len(data.labels.ecg_ids), len(data.labels.classes), ", ".join(data.labels.classes),
        cfg.protocol, len(data.splits),
    )  # fmt: skip
    chosen = data.splits if cfg.only_fold is None else [data.splits[cfg.only_fold]]
    results = []
    for split in chosen:
        fold_dir = out / split.name
        if resume and (fold_dir / "metrics.json").is_file():
            log.info("%s: finished before, not retrained", split.name)
            if world.is_main:  # stopped after metrics.json, before the clean-up
                remove_scratch(fold_dir)
            results.append(load_fold_results(fold_dir))
            continue
        if not resume and world.is_main:  # a fresh start: no interrupted epoch, no finished member
            remove_scratch(fold_dir)
        world.barrier()
        results.append(train_fold(cfg, data, split, fold_dir, world))
        world.barrier()
    if not world.is_main:
        return {}
    if cfg.only_fold is not None:
        return results[0]
    return cv_summary(out)


def check_same_world(out: Path, size: int) -> None:
    """Refuse to go on with a trained run in another number of processes: --batch-size is per
    process, so the effective batch (and with it the result) would change."""
    path = out / "config.json"
    began = read_json(path).get("world_size") if path.is_file() else None
    if began is None or int(began) == size or not any(out.glob("*/history.json")):
        return
    raise EcgcnnError(
        f"{out} was trained with {began} process(es) and this is {size}: --batch-size is per "
        f"process, so the run would go on with another effective batch; continue it with {began} "
        f"(ecgcnn train --resume {out} --nproc {began}) or train into a new --out"
    )


def work_in_run(cfg: TrainConfig) -> list[str]:
    """What ``cfg``'s folds already hold in its run folder: 'fold_0 (finished)', 'fold_1
    (interrupted or in progress)'. ``train(cfg)`` without ``resume`` would start those afresh."""
    out = Path(cfg.out)
    if not (out / "config.json").is_file():
        return []
    if cfg.protocol == "benchmark":
        names = ["benchmark"]
    else:
        names = [f"fold_{k}" for k in range(cfg.folds)] if cfg.only_fold is None else [
            f"fold_{cfg.only_fold}"]  # fmt: skip
    held = []
    for name in names:
        fold_dir = out / name
        if (fold_dir / "metrics.json").is_file():
            held.append(f"{name} (finished)")
        elif any(any(fold_dir.glob(pattern)) for pattern in SCRATCH):
            held.append(f"{name} (interrupted or in progress)")
    return held


def load_fold_results(fold_dir: Path) -> dict[str, Any]:
    result = {"val": read_json(fold_dir / "metrics.json")}
    if (fold_dir / "metrics_test.json").is_file():
        result["test"] = read_json(fold_dir / "metrics_test.json")
    return result


def resume_config(run_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The TrainConfig of an existing run (from its config.json), for ``train(cfg, resume=True)``."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise EcgcnnError(f"{run_dir} is not a run folder (no config.json): nothing to resume")
    saved = read_json(path)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in names}
    values["recipe"] = Recipe.from_dict(values["recipe"], str(path))
    values["out"] = str(run_dir)
    values["only_fold"] = None  # the process that began the run chose its fold, not the run
    values |= {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig(**values)


# Settings that may differ between the processes that train the folds of one run (the folder and
# the data root may be spelled or mounted differently: the data itself is checked by its splits).
PER_PROCESS_SETTINGS = ("only_fold", "progress", "device", "cache_dir", "out", "data_root")


def settings_diff(
    there: dict[str, Any], here: dict[str, Any], here_is: str = "now", skip: tuple[str, ...] = ()
) -> list[str]:
    """The settings of ``here`` that differ from ``there`` ('seed: 42 there, 7 now'), the recipe
    field by field; per-process settings and ``skip`` are not compared."""
    diff = []
    for k, v in here.items():
        was = there.get(k)
        if k in (*PER_PROCESS_SETTINGS, *skip) or was == v:
            continue
        if isinstance(v, dict) and isinstance(was, dict):  # the recipe: name its changed fields
            diff += [f"{k}.{f}: {was.get(f)!r} there, {v.get(f)!r} {here_is}"
                     for f in sorted(v.keys() | was.keys()) if was.get(f) != v.get(f)]  # fmt: skip
        else:
            diff.append(f"{k}: {was!r} there, {v!r} {here_is}")
    return diff


def check_same_run(
    config_path: Path, config: dict[str, Any], quiet: bool = False
) -> dict[str, Any]:
    """Refuse to mix two different runs in one folder (folds of one run may be trained apart).

    Returns what config.json keeps from the run's first start: the version that began it and,
    under ``continued_by``, the later versions that went on with it. ``quiet``: refusals only,
    no warning (for a check made before the run itself makes it again).
    """
    if not config_path.is_file():
        return {}
    old = read_json(config_path)
    if isinstance(old.get("recipe"), dict):  # a run from before a setting existed had its default
        old["recipe"] = Recipe.from_dict(old["recipe"], str(config_path)).to_dict()
    diff = settings_diff(old, json.loads(json.dumps(config)), skip=("version", "continued_by"))
    if diff:
        raise EcgcnnError(
            f"{config_path.parent} already holds a run with other settings ({'; '.join(diff[:3])}); "
            "choose another --out"
        )
    # The version is not a setting: an older run resumes with a word (each fold's state and
    # checkpoint keep the version that wrote them); a newer one may hold settings this one drops.
    began, now = old.get("version"), config.get("version")
    continued_by = [str(v) for v in old.get("continued_by") or []]
    kept: dict[str, Any] = {"version": began}  # None: begun before versions were recorded (0.2.0)
    if continued_by:
        kept["continued_by"] = continued_by
    if now is None:
        return kept
    for version, verb in ((began, "begun"), *((v, "continued") for v in continued_by)):
        if version is not None and _version_key(str(version)) > _version_key(now):
            raise EcgcnnError(f"{config_path.parent} was {verb} by ecgcnn {version}, newer than this "
                              f"one ({now}): resume it with ecgcnn {version} or newer")  # fmt: skip
    if began == now or now in continued_by:  # said once for each version, not at every resume
        return kept
    if not quiet:
        log.warning("%s was begun by ecgcnn %s; going on with ecgcnn %s", config_path.parent,
                    began or "before 0.2.0", now)  # fmt: skip
    return kept | {"continued_by": [*continued_by, now]}


def _version_key(version: str) -> tuple[int, ...]:
    """'0.10.1' -> (0, 10, 1): release numbers compared as numbers (a suffix such as .dev1 ignored)."""
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:3])


def check_same_splits(path: Path, splits: dict[str, Any]) -> None:
    """Refuse to continue a run whose data now gives other folds than the ones it began with."""
    if not path.is_file():
        return
    old = read_json(path)
    new = json.loads(json.dumps(splits))
    if old == new:
        return
    if old.get("classes") != new["classes"]:
        what = f"classes {old.get('classes')} there, {new['classes']} now"
    else:
        what = next(
            (f"{fold} {part}: {old['splits'][fold][part]['records']} records there, "
             f"{new['splits'][fold][part]['records']} now"
             for fold in new["splits"] for part in ("train", "val", "test")
             if part in new["splits"][fold] and old.get("splits", {}).get(fold, {}).get(part, {})
             .get("records") != new["splits"][fold][part]["records"]),
            "the same sizes, other records",
        )  # fmt: skip
    raise EcgcnnError(
        f"{path.parent}: the data changed since this run began ({what}; see its splits.json); "
        "train into a new --out"
    )


def splits_summary(data: Prepared) -> dict[str, Any]:
    """What splits.json holds: per fold, sizes and label counts of each part, validation ecg_ids."""
    y, classes = data.labels.y, data.labels.classes
    parts = {}
    for s in data.splits:
        rows = {"train": s.train, "val": s.val}
        if s.test is not None:
            rows["test"] = s.test
        parts[s.name] = describe(rows, y, classes) | {
            "val_ecg_ids": data.labels.ecg_ids[s.val].tolist()
        }
    return {"classes": list(classes), "splits": parts}


def class_weights(y: np.ndarray, classes: tuple[str, ...], max_weight: float) -> torch.Tensor:
    """pos_weight = negatives / positives per class, from the training fold; clamped and warned."""
    pos = y.sum(axis=0)
    neg = len(y) - pos
    weight = neg / np.maximum(pos, 1)
    absent = [c for c, p in zip(classes, pos, strict=True) if p == 0]
    clamped = [f"{c} (pos_weight {w:.4g})" for c, p, w in zip(classes, pos, weight, strict=True)
               if p > 0 and w > max_weight]  # fmt: skip
    if absent:  # its weight multiplies no term of the loss
        log.warning("class(es) %s: no positives in the training fold, nothing to learn them from",
                    ", ".join(absent))  # fmt: skip
    if clamped:
        log.warning("class(es) %s: very few positives in the training fold; clamped to %g",
                    ", ".join(clamped), max_weight)  # fmt: skip
    return torch.tensor(np.minimum(weight, max_weight), dtype=torch.float32)


MEMBER_SEED_STEP = 1000  # member k of an ensemble trains from seed + fold + 1000 k


def train_fold(
    cfg: TrainConfig, data: Prepared, split: Split, fold_dir: Path, world: World | None = None
) -> dict[str, Any]:
    """Train one fold, keep its best (or last) epoch, tune thresholds, write everything to fold_dir.

    After every epoch the complete training state goes atomically to ``fold_dir/state.pt``; a fold
    that finds one continues after its last complete epoch (``ecgcnn train --resume``).

    With ``recipe.members`` K > 1 the fold trains K networks one after another, member k from seed
    ``seed + fold + 1000 k`` (so member 0 is the one-network run), and keeps their ``Ensemble``.
    Each member has its own ``state-member{k}.pt``; a finished one waits in ``member{k}.pt`` (not
    retrained on resume) until the ensemble's checkpoint is written.
    """
    recipe, labels, signals = cfg.recipe, data.labels, data.signals
    world = world or World()
    device = device_for(world, cfg.device)
    rows_train, rows_val = data.cache_rows[split.train], data.cache_rows[split.val]
    y_val = labels.y[split.val]
    n_classes = len(labels.classes)
    # auxiliary targets: extra outputs trained beside the task's, cut off once training ends
    targets = labels.y[split.train]
    if data.aux is not None:
        targets = np.hstack([targets, data.aux.y[split.train]])
    mean, std = standardization(signals.data, rows_train, seed=cfg.seed)
    target_names = labels.classes + (() if data.aux is None else data.aux.classes)
    pos_weight = (
        class_weights(targets, target_names, recipe.max_pos_weight)
        if recipe.class_weighted
        else None
    )
    scoring = functools.partial(predict_proba, data=signals.data, device=device,
                                **window_settings(recipe, cfg.fs))  # fmt: skip

    def predict(model: nn.Module, rows: np.ndarray) -> np.ndarray:
        """Probabilities of the task's outputs (not the auxiliary ones) for ``rows``."""
        return scoring(model, rows=rows)[:, :n_classes]

    log.info(
        "%s: %d train / %d validation records; validation positives: %s",
        split.name, len(rows_train), len(rows_val),
        ", ".join(f"{c} {int(n)}" for c, n in zip(labels.classes, y_val.sum(axis=0), strict=True)),
    )  # fmt: skip
    fit = functools.partial(fit_network, cfg, data, split, fold_dir, world, device, targets,
                            pos_weight, mean, std, predict)  # fmt: skip
    if recipe.members == 1:
        model, best, _ = fit(member=None, earlier=[])
    else:
        model, best = fit_ensemble(
            cfg, split, fold_dir, world, device, targets, n_classes, mean, std, fit
        )
        val_positions = shard(len(rows_val), world)
        best["prob"] = gather_rows(
            predict(model, rows=rows_val[val_positions]), val_positions, len(rows_val), world
        )
    if not world.is_main:
        return {}
    result = finish_fold(cfg, data, split, fold_dir, model, best, predict, mean, std)
    remove_scratch(fold_dir)
    return result


# What an unfinished fold keeps for resuming: epoch states and finished members.
SCRATCH = ("state*.pt", "member*.pt")


def remove_scratch(fold_dir: Path) -> None:
    """Delete what an unfinished fold keeps for resuming (SCRATCH)."""
    for scratch in [p for pattern in SCRATCH for p in fold_dir.glob(pattern)]:
        scratch.unlink(missing_ok=True)


def fit_ensemble(
    cfg: TrainConfig,
    split: Split,
    fold_dir: Path,
    world: World,
    device: torch.device,
    targets: np.ndarray,
    n_classes: int,
    mean: np.ndarray,
    std: np.ndarray,
    fit: Callable[..., tuple[Classifier, dict[str, Any], list[dict[str, Any]]]],
) -> tuple[Classifier, dict[str, Any]]:
    """Train (or take the finished) members in turn; their ensemble and the epochs kept."""
    members = cfg.recipe.members
    nets: list[nn.Module] = []
    epochs: list[int] = []
    history: list[dict[str, Any]] = []
    for member in range(members):
        done = fold_dir / f"member{member}.pt"
        if done.is_file():
            saved = torch.load(done, map_location="cpu", weights_only=True)
            net = create_model(cfg.model, targets.shape[1])
            if targets.shape[1] > n_classes:  # saved with its auxiliary outputs cut off
                keep_outputs(net, n_classes, total=targets.shape[1])
            model = Classifier(net, torch.from_numpy(mean), torch.from_numpy(std))
            model.load_state_dict(saved["state"])
            part, epoch = saved["history"], int(saved["epoch"])
            log.info(
                "%s: member %d of %d finished before, not retrained", split.name, member, members
            )
        else:
            model, best, part = fit(member=member, earlier=history)
            epoch = int(best["epoch"])
            if world.is_main:  # the weights alone from now on, not the optimiser and EMA state
                saved = {"state": model.state_dict(), "history": part, "epoch": epoch}
                atomic.write_with(done, lambda f, saved=saved: torch.save(saved, f))
                (fold_dir / f"state-member{member}.pt").unlink(missing_ok=True)
            world.barrier()
        nets.append(model.net.cpu())
        epochs.append(epoch)
        history += part
    ensemble = Classifier(Ensemble(nets), torch.from_numpy(mean), torch.from_numpy(std)).eval()
    return ensemble.to(device), {"epoch": max(epochs), "epochs": epochs}


def fit_network(
    cfg: TrainConfig,
    data: Prepared,
    split: Split,
    fold_dir: Path,
    world: World,
    device: torch.device,
    targets: np.ndarray,
    pos_weight: torch.Tensor | None,
    mean: np.ndarray,
    std: np.ndarray,
    predict: Callable[..., np.ndarray],
    member: int | None,
    earlier: list[dict[str, Any]],
) -> tuple[Classifier, dict[str, Any], list[dict[str, Any]]]:
    """Train one network of the fold (``member`` of an ensemble, or None): model, best epoch, history.

    The model comes back with its best (or last) epoch's weights and auxiliary outputs cut off;
    ``earlier`` is the history of the members before it, written ahead of this one's.
    """
    recipe, labels, signals = cfg.recipe, data.labels, data.signals
    fold_index = [s.name for s in data.splits].index(split.name)
    seed = cfg.seed + fold_index + MEMBER_SEED_STEP * (member or 0)
    seed_everything(seed)
    rows_train, rows_val = data.cache_rows[split.train], data.cache_rows[split.val]
    y_val = labels.y[split.val]
    n_classes = len(labels.classes)
    net = create_model(cfg.model, targets.shape[1])
    model = Classifier(net, torch.from_numpy(mean), torch.from_numpy(std)).to(device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else pos_weight.to(device))
    if data.aux is not None:
        loss_fn = TaskAndAuxLoss(loss_fn, n_classes)
    optimizer = make_optimizer(recipe, model)
    gen = torch.Generator().manual_seed(seed)
    window = window_samples(recipe, cfg.fs)
    train_set = RecordDataset(
        signals.data, rows_train, targets, recipe.augment(), gen, window, fs=cfg.fs
    )
    # Under torchrun each rank draws its share of every epoch's permutation; --batch-size is per rank.
    sampler = (
        DistributedSampler(train_set, world.size, world.rank, shuffle=True, seed=seed)
        if world.distributed
        else None
    )
    loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=sampler is None, sampler=sampler,
                        generator=gen, collate_fn=collate_batch)  # fmt: skip
    trained = DistributedDataParallel(model) if world.distributed else model
    # With ema_decay the averaged weights are the ones validated, selected and saved.
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
        if recipe.ema_decay > 0
        else None
    )
    scored = model if ema is None else ema.module
    val_positions = shard(len(rows_val), world)
    schedule = make_schedule(recipe, optimizer, len(loader))
    name = split.name if member is None else f"{split.name} member {member}"
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -np.inf}
    first_epoch = 1
    state_path = fold_dir / ("state.pt" if member is None else f"state-member{member}.pt")
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"]["torch"])
        gen.set_state(state["rng"]["loader"])
        history, best = state["history"], state["best"]
        best["prob"] = best["prob"].numpy()
        first_epoch = state["epoch"] + 1
        if state.get("version", "0.1.0") != __version__:  # saved without one before 0.2.0
            log.warning("%s: epochs 1-%d were trained by ecgcnn %s, the rest by %s", name,
                        state["epoch"], state.get("version", "0.1.0"), __version__)  # fmt: skip
        if member is None:
            log.info("%s: resuming after epoch %d", split.name, state["epoch"])
        else:
            log.info("%s: member %d of %d resuming after epoch %d", split.name, member,
                     recipe.members, state["epoch"])  # fmt: skip
    for epoch in range(first_epoch, recipe.epochs + 1):
        start = time.perf_counter()
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
        reseed_for_rank(gen, seed, epoch, world)
        total, seen = 0.0, 0
        bar = tqdm(loader, desc=f"{name} epoch {epoch}/{recipe.epochs}", leave=False,
                   disable=not cfg.progress)  # fmt: skip
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            # bfloat16 autocast on CUDA (mixed precision without a loss scaler); full float32 on CPU
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = loss_fn(trained(x).float(), y)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item() * len(x)
            seen += len(x)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        # Each rank's last steps (and its EMA) updated its own BatchNorm statistics: every rank
        # scores its share of the validation records with rank 0's, the ones saved.
        broadcast_buffers(scored, world)
        prob_val = gather_rows(
            predict(scored, rows=rows_val[val_positions]), val_positions, len(rows_val), world
        )
        m = compute_metrics(y_val, prob_val, labels.classes, warn=epoch == 1 and not member)
        row = {
            **({} if member is None else {"member": member}),
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_loss": bce(
                y_val, prob_val, None if pos_weight is None else pos_weight[:n_classes]
            ),
            "val_pr_auc_macro": m["pr_auc_macro"],
            "val_roc_auc_macro": m["roc_auc_macro"],
            "val_f1_macro_at_0.5": m["f1_macro"],
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        log.info(
            "%s epoch %d/%d  loss %.4f  val loss %.4f  PR-AUC %s  ROC-AUC %s  (%.1fs)",
            name, epoch, recipe.epochs, row["train_loss"], row["val_loss"],
            fmt(row["val_pr_auc_macro"]), fmt(row["val_roc_auc_macro"]), row["seconds"],
        )  # fmt: skip
        score = m["pr_auc_macro"] if m["pr_auc_macro"] is not None else -row["val_loss"]
        if not recipe.select_best or score > best["score"]:
            best = {"score": score, "epoch": epoch, "prob": prob_val,
                    "state": copy.deepcopy(scored.state_dict())}  # fmt: skip
        if not world.is_main:
            continue
        atomic.write_json(fold_dir / "history.json", earlier + history)
        state = {
            "epoch": epoch,
            "version": __version__,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": None if schedule is None else schedule.state_dict(),
            "ema": None if ema is None else ema.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "loader": gen.get_state()},
            "history": history,
            "best": best | {"prob": torch.from_numpy(np.asarray(best["prob"]))},
        }
        atomic.write_with(state_path, lambda f, state=state: torch.save(state, f))
    model.load_state_dict(best["state"])
    if data.aux is not None:
        keep_outputs(model.net, n_classes, total=targets.shape[1])
    return model, best, history


def finish_fold(
    cfg: TrainConfig,
    data: Prepared,
    split: Split,
    fold_dir: Path,
    model: Classifier,
    best: dict[str, Any],
    predict: Callable[..., np.ndarray],
    mean: np.ndarray,
    std: np.ndarray,
) -> dict[str, Any]:
    """Thresholds, predictions, metrics and the checkpoint of a trained fold."""
    labels, signals = data.labels, data.signals
    y_val = labels.y[split.val]
    thresholds, sources = tune_thresholds(y_val, best["prob"])
    metrics = compute_metrics(y_val, best["prob"], labels.classes, thresholds, warn=False)
    metrics |= {
        "split": "val",
        "fold": split.name,
        "epoch": best["epoch"],
        **({"member_epochs": best["epochs"]} if "epochs" in best else {}),
        "threshold_source": sources,
    }
    atomic.write_npz(fold_dir / "predictions_val.npz", y_true=y_val, y_prob=best["prob"],
                     ecg_ids=labels.ecg_ids[split.val])  # fmt: skip
    result = {"val": metrics}
    if split.test is not None:
        y_test = labels.y[split.test]
        prob_test = predict(model, rows=data.cache_rows[split.test])
        test_metrics = compute_metrics(y_test, prob_test, labels.classes, thresholds)
        test_metrics |= {"split": "test", "fold": split.name, "epoch": best["epoch"]}
        atomic.write_npz(fold_dir / "predictions_test.npz", y_true=y_test, y_prob=prob_test,
                         ecg_ids=labels.ecg_ids[split.test])  # fmt: skip
        atomic.write_json(fold_dir / "metrics_test.json", test_metrics)
        result["test"] = test_metrics
    if cfg.protocol == "benchmark":
        # The benchmark keeps train predictions too, so tables can be recomputed from files.
        prob_train = predict(model, rows=data.cache_rows[split.train])
        atomic.write_npz(fold_dir / "predictions_train.npz", y_true=labels.y[split.train],
                         y_prob=prob_train, ecg_ids=labels.ecg_ids[split.train])  # fmt: skip
    members = cfg.recipe.members
    meta = {
        "model": {"name": cfg.model, "kwargs": {}} | ({"members": members} if members > 1 else {}),
        "task": cfg.task,
        "classes": list(labels.classes),
        "leads": list(signals.leads),
        "fs": cfg.fs,
        "input_length": int(signals.data.shape[2]),
        **window_settings(cfg.recipe, cfg.fs),
        "baseline": cfg.recipe.baseline,
        "preprocess": {"mean": mean.tolist(), "std": std.tolist()},
        "thresholds": thresholds,
        "threshold_source": sources,
        "metrics": {"val": scalar_metrics(metrics)}
        | ({"test": scalar_metrics(result["test"])} if "test" in result else {}),
        "epoch": best["epoch"],
        **({"member_epochs": best["epochs"]} if "epochs" in best else {}),
        "fold": split.name,
        "strat_folds_seen": seen_strat_folds(
            data.strat_fold[np.concatenate([split.train, split.val])]
        ),
        "config": json.loads(json.dumps(cfg.to_dict())),
    }
    save_checkpoint(fold_dir / "checkpoint.pt", model.cpu(), meta)
    # metrics.json last: its presence marks the fold as finished (cv-summary, --resume).
    atomic.write_json(fold_dir / "metrics.json", metrics)
    log.info(
        "%s done: best epoch %d, validation PR-AUC %s, ROC-AUC %s, F1 macro %s",
        split.name, best["epoch"], fmt(metrics["pr_auc_macro"]), fmt(metrics["roc_auc_macro"]),
        fmt(metrics["f1_macro"]),
    )  # fmt: skip
    return result


def window_samples(recipe: Recipe, fs: int) -> int | None:
    return None if recipe.window_s is None else round(recipe.window_s * fs)


def window_settings(recipe: Recipe, fs: int) -> dict[str, Any]:
    """How a model of this recipe reads a record: whole, or windows aggregated (stored in checkpoints)."""
    window = window_samples(recipe, fs)
    if window is None:
        return {"window": None, "stride": None, "aggregate": recipe.aggregate}
    stride = round(recipe.stride_s * fs) if recipe.stride_s else max(window // 2, 1)
    return {"window": window, "stride": stride, "aggregate": recipe.aggregate}


def make_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_schedule(
    recipe: Recipe, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Stepped once per batch; None for a constant learning rate."""
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=recipe.lr,
            epochs=recipe.epochs,
            steps_per_epoch=max(steps_per_epoch, 1),
        )
    return None


def seen_strat_folds(folds: np.ndarray) -> list[int]:
    """The strat_folds of the records a model trained and chose its epoch and thresholds on."""
    values = np.asarray(folds, dtype=np.float64)
    return sorted({int(f) for f in values[np.isfinite(values)]})


class TaskAndAuxLoss(nn.Module):
    """The task's BCE plus the auxiliary outputs' BCE, each a mean over its own outputs.

    A plain mean over all outputs would let 71 auxiliary statements outweigh 5 task classes 14 to 1.
    A record without a label in the auxiliary task counts as negative for each of its statements
    (PTB-XL lists the statements a record has; absence means not reported).
    """

    def __init__(self, bce: nn.BCEWithLogitsLoss, n_task: int) -> None:
        super().__init__()
        self.bce, self.n_task = bce, n_task
        self.bce.reduction = "none"

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        each = self.bce(logits, y)
        return each[:, : self.n_task].mean() + each[:, self.n_task :].mean()


def bce(y: np.ndarray, prob: np.ndarray, pos_weight: torch.Tensor | None) -> float:
    """The training loss on predicted probabilities (for the validation log)."""
    p = np.clip(prob, 1e-7, 1 - 1e-7)
    w = 1.0 if pos_weight is None else pos_weight.cpu().numpy()
    return float(np.mean(-(w * y * np.log(p) + (1 - y) * np.log(1 - p))))


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) or v is None}


def cv_summary(run_dir: str | Path) -> dict[str, Any]:
    """Merge the fold results of a run into cv_results.json (also after ``--only-fold`` runs).

    A run with a held-out test fold (``--holdout-fold``, the benchmark split) needs every fold's
    test predictions: one that is missing is an error naming it, and cv_results.json is kept.
    """
    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise EcgcnnError(f"{run} is not a run folder (no config.json)")
    config = read_json(config_path)
    for key in ("fold_names", "classes", "model", "task", "protocol"):
        if not isinstance(config, dict) or key not in config:
            raise EcgcnnError(f"{config_path}: missing {key!r}; was it written by ecgcnn train?")
    names = config["fold_names"]
    missing = [n for n in names if not (run / n / "metrics.json").is_file()]
    if missing:
        raise EcgcnnError(f"{run}: fold(s) {', '.join(missing)} not trained yet (no metrics.json)")
    for n in names:
        check_fold_settings(run, n, config)
    folds = {n: read_fold_metrics(run / n / "metrics.json") for n in names}
    results: dict[str, Any] = {
        "run": str(run),
        "model": config["model"],
        "members": int(config.get("recipe", {}).get("members", 1)),
        "task": config["task"],
        "protocol": config["protocol"],
        "classes": config["classes"],
        "folds": {n: scalar_metrics(m) | {"per_class": m["per_class"]} for n, m in folds.items()},
        "mean_std": summarize(list(folds.values())),
    }
    tests = {n: run / n / "predictions_test.npz" for n in names}
    tested = config["protocol"] == "benchmark" or config.get("holdout_fold") is not None
    if tested or any(p.is_file() for p in tests.values()):
        for n, path in tests.items():
            for file in (path, run / n / "metrics_test.json"):
                if not file.is_file():
                    raise EcgcnnError(
                        f"{file} is missing (the run scores a held-out fold); delete {run / n} "
                        f"and train it again (ecgcnn train --resume {run})"
                    )
        test_metrics = {n: read_fold_metrics(run / n / "metrics_test.json") for n in names}
        part: dict[str, Any] = {
            "folds": {
                n: scalar_metrics(m) | {"per_class": m["per_class"]}
                for n, m in test_metrics.items()
            },
            "mean_std": summarize(list(test_metrics.values())),
        }
        if len(names) > 1:
            part["ensemble"] = ensemble_metrics(run, names, config["classes"])
        results["holdout" if config["protocol"] == "cv" else "test"] = part
    atomic.write_json(run / "cv_results.json", results)
    return results


def read_fold_metrics(path: Path) -> dict[str, Any]:
    """A fold's saved metrics; JSON that is not (a hand-edited file) is an error naming the file."""
    metrics = read_json(path)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("per_class"), dict):
        raise EcgcnnError(f"{path}: expected a fold's metrics (an object with per_class); "
                          "was it written by ecgcnn train?")  # fmt: skip
    return metrics


def check_fold_settings(run: Path, name: str, config: dict[str, Any]) -> None:
    """Refuse a fold whose checkpoint was trained with other settings than the run's config.json:
    folds trained apart (parallel --only-fold jobs) can pass the start-up check at the same time."""
    path = run / name / "checkpoint.pt"
    if not path.is_file():
        return
    trained = load_checkpoint(path).get("config")
    if not isinstance(trained, dict):  # a checkpoint that does not record its settings
        return
    in_config = {k: config.get(k) for k in trained}
    if isinstance(trained.get("recipe"), dict) and isinstance(in_config["recipe"], dict):
        trained = trained | {"recipe": Recipe.from_dict(trained["recipe"], str(path)).to_dict()}
        in_config["recipe"] = Recipe.from_dict(
            in_config["recipe"], str(run / "config.json")
        ).to_dict()
    diff = settings_diff(trained, in_config, here_is="in config.json")
    if diff:
        raise EcgcnnError(
            f"{run}: {name} was trained with other settings than the run ({'; '.join(diff[:3])}; "
            f"{path}); delete {run / name} and train it again (ecgcnn train --resume {run} "
            f"--only-fold {config['fold_names'].index(name)})"
        )


def ensemble_metrics(run: Path, names: list[str], classes: list[str]) -> dict[str, Any]:
    """Mean-probability ensemble of the fold models on the test records, at the mean fold thresholds."""
    preds = [read_predictions(run / n / "predictions_test.npz", len(classes)) for n in names]
    ids = preds[0]["ecg_ids"]
    if any(not np.array_equal(p["ecg_ids"], ids) for p in preds):
        raise EcgcnnError(f"{run}: fold test predictions cover different records; cannot ensemble")
    prob = np.mean([p["y_prob"] for p in preds], axis=0)
    thr = np.mean(
        [[c["threshold"] for c in read_json(run / n / "metrics.json")["per_class"].values()]
         for n in names],
        axis=0,
    )  # fmt: skip
    m = compute_metrics(preds[0]["y_true"], prob, tuple(classes), thr)
    return scalar_metrics(m) | {"per_class": m["per_class"], "models": len(names)}
