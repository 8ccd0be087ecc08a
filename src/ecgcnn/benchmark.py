"""The PTB-XL benchmark: every model on every task with the strat_fold split, and its leaderboard.

::

    runs/BENCH/
      TASK/MODEL/            an ordinary run folder (protocol benchmark): config, checkpoint, predictions
      leaderboard.json       every entry with bootstrap intervals, training time and parameters
      leaderboard.md         the same as tables

A model may name its own recipe as ``MODEL@RECIPE`` (``cnn1d@seed``: the original repository's cnn1d
with its own training, 10 epochs of whole records); such an entry keeps that recipe's settings, while
``--epochs``, ``--batch-size``, ``--aggregate``, ``--baseline``, ``--members``, ``--aux-task``, ``--ema``
and ``--label-smoothing`` apply to the entries trained with the benchmark's recipe (``--aux-task`` to
those of the other tasks). An entry may also name its own ensemble size as ``MODEL[@RECIPE]-xK``
(``fcn_wang-x2``: two networks), so one benchmark holds a network and its ensemble side by side;
``--members`` sizes the benchmark-recipe entries that do not.

The leaderboard is a function of the saved predictions: ``ecgcnn leaderboard RUN`` recomputes it
without retraining, and an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ecgcnn import __version__, atomic
from ecgcnn.bootstrap import bootstrap_auc, evaluable_classes, paired_bootstrap_auc
from ecgcnn.errors import BootstrapError, EcgcnnError
from ecgcnn.labels import check_task
from ecgcnn.models import build_network, check_model, count_parameters, model_label
from ecgcnn.recipes import Recipe, get_recipe
from ecgcnn.saved import read_json, read_predictions
from ecgcnn.train import TrainConfig, check_same_run, train

log = logging.getLogger(__name__)
FOLD = "benchmark"
NAIVE = "naive (training prior)"


def run_benchmark(
    data_root: str | Path,
    out: str | Path,
    tasks: list[str],
    models: list[str],
    recipe: str = "benchmark",
    train_folds: list[int] | None = None,
    val_fold: int = 9,
    test_fold: int = 10,
    epochs: int | None = None,
    aggregate: str | None = None,
    batch_size: int | None = None,
    members: int | None = None,
    baseline: str | None = None,
    aux_task: str | None = None,
    ema: float | None = None,
    label_smoothing: float | None = None,
    fs: int = 100,
    seed: int = 42,
    reference: str = "cnn1d",
    cache_dir: str | None = None,
    device: str = "auto",
    progress: bool = True,
    skip_missing: bool = False,
) -> dict[str, Any]:
    """Train each model on each task (skipping finished ones, resuming interrupted ones), then rank."""
    if not tasks:
        raise EcgcnnError("no task given (--tasks superdiagnostic,all for example)")
    if not models:
        raise EcgcnnError("no model given (--models fcn_wang,cnn1d for example)")
    for task in (*tasks, *([aux_task] if aux_task is not None else [])):
        check_task(task)
    entries = [parse_entry(m, recipe) for m in models]
    out = Path(out)
    runs = []
    for task in tasks:
        for spec, model, entry_recipe, own, size in entries:
            if not own:
                entry_recipe = entry_recipe.with_overrides(
                    epochs=epochs, aggregate=aggregate, batch_size=batch_size, members=members,
                    baseline=baseline, ema_decay=ema, label_smoothing=label_smoothing,
                    # a task's own labels are no auxiliary outputs for it: its entries go without
                    aux_task=aux_task if aux_task != task else None,
                )  # fmt: skip
            if size is not None:
                entry_recipe = entry_recipe.with_overrides(members=size)
            cfg = TrainConfig(
                data_root=str(data_root), out=str(out / task / spec), model=model, task=task,
                protocol="benchmark", seed=seed, fs=fs, recipe=entry_recipe,
                train_folds=train_folds or list(range(1, 9)), val_fold=val_fold, test_fold=test_fold,
                cache_dir=cache_dir, device=device, progress=progress, skip_missing=skip_missing,
            )  # fmt: skip
            # a finished entry trained with other settings would mix two experiments in one table:
            # refuse before training anything
            cfg.validate()
            check_same_run(out / task / spec / "config.json",
                           cfg.to_dict() | {"version": __version__}, quiet=True)  # fmt: skip
            _entry(out / task / spec)  # a finished entry without its predictions: refused here
            runs.append((task, spec, cfg))
    for task, spec, cfg in runs:
        if (Path(cfg.out) / FOLD / "metrics.json").is_file():
            log.info("%s / %s: finished before, not retrained", task, spec)
            continue
        log.info("benchmark: training %s on %s", spec, task)
        train(cfg, resume=True)
    return leaderboard(out, reference=reference, strict=False)


class Entry(NamedTuple):
    """One model of a benchmark, as ``--models`` names it."""

    name: str  # as given: the entry's folder and leaderboard row
    model: str
    recipe: Recipe
    own_recipe: bool  # MODEL@RECIPE: the benchmark's overrides do not apply
    members: int | None  # MODEL-xK: its own ensemble size (None: the recipe's or --members)


ENTRY = re.compile(r"(?P<model>[^@]+?)(?:@(?P<recipe>[^@]+?))?(?:-x(?P<members>[1-9][0-9]*))?")


def parse_entry(spec: str, recipe: str) -> Entry:
    """``MODEL[@RECIPE][-xK]`` -> an :class:`Entry` (``cnn1d@seed``, ``fcn_wang-x2``)."""
    match = ENTRY.fullmatch(spec)
    if match is None or "-x" in match["model"] or "-x" in (match["recipe"] or ""):
        raise EcgcnnError(
            f"model {spec!r}: expected MODEL[@RECIPE][-xK] (cnn1d@seed, fcn_wang-x2; K >= 1)"
        )
    check_model(match["model"])
    own = match["recipe"]
    members = int(match["members"]) if match["members"] else None
    return Entry(spec, match["model"], get_recipe(own or recipe), own is not None, members)


def _entry(run: Path) -> dict[str, Any] | None:
    """A finished entry's saved files (None: not finished). A finished one whose test predictions
    are gone is named: it was trained, and its row cannot be computed."""
    fold = run / FOLD
    if not (fold / "metrics.json").is_file():
        return None
    if not (fold / "predictions_test.npz").is_file():
        raise MissingPredictions(
            f"{fold / 'predictions_test.npz'} is missing (the entry finished training): delete "
            f"{run} to train it again"
        )
    config = read_json(run / "config.json")
    history = read_json(fold / "history.json")
    n_classes = len(config["classes"])
    members = int(config["recipe"].get("members", 1))
    train_file = fold / "predictions_train.npz"
    return {
        "model": run.name,  # MODEL or MODEL@RECIPE
        "config": config,
        "test": read_predictions(fold / "predictions_test.npz", n_classes),
        "train": read_predictions(train_file, n_classes, ("y_true",)) if train_file.is_file() else None,
        "train_seconds": float(sum(h["seconds"] for h in history)),  # every member's
        "epochs": max((h["epoch"] for h in history), default=0),
        "members": members,
        "baseline": str(config["recipe"].get("baseline") or "keep"),
        "aux_task": config["recipe"].get("aux_task"),
        "ema_decay": float(config["recipe"].get("ema_decay", 0.0)),
        "label_smoothing": float(config["recipe"].get("label_smoothing", 0.0)),
        "parameters": count_parameters(build_network(config["model"], n_classes, members)),
    }  # fmt: skip


class MissingPredictions(EcgcnnError):
    """A finished benchmark entry without its predictions_test.npz."""


def leaderboard(
    out: str | Path,
    reference: str | None = None,
    n_resamples: int = 100,
    seed: int = 0,
    strict: bool = True,
) -> dict[str, Any]:
    """Recompute the leaderboard of a benchmark folder from its saved predictions.

    ``reference`` defaults to the one of the folder's last leaderboard (else cnn1d). One that was
    not trained here is an error when ``strict``, else a warning (the table then has no paired
    differences).
    """
    out = Path(out)
    if reference is None:
        reference, strict = _saved_reference(out / "leaderboard.json") or "cnn1d", False
    tasks = sorted(p.name for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    board: dict[str, Any] = {"run": str(out), "reference": reference, "level": 0.9,
                             "n_resamples": n_resamples, "tasks": {}}  # fmt: skip
    in_skipped: set[str] = set()  # the models of tasks left out (a --reference trained only there)
    unscorable: dict[str, str] = {}  # model: why an entry of it is left out
    for task in tasks:
        entries, missing = {}, []
        for run in sorted((out / task).iterdir()):
            try:
                entry = _entry(run)
            except MissingPredictions as e:
                log.warning("%s / %s: left out of the leaderboard: %s", task, run.name, e)
                unscorable.setdefault(run.name, str(e))
                missing.append(str(e))
                continue
            if entry is not None:
                entries[entry["model"]] = entry
        if not entries and missing:  # finished, yet nothing to score: named, not passed over
            board.setdefault("skipped_tasks", {})[task] = "; ".join(missing)
        if not entries:
            continue
        in_skipped |= set(entries)  # taken back below for the tasks that are scored
        y_test = next(iter(entries.values()))["test"]["y_true"]
        if not evaluable_classes(y_test).any():  # e.g. a small root whose test fold is all SR
            reason = (f"no class has at least 1 positive(s) and one negative in the {len(y_test)} "
                      "test records")  # fmt: skip
            log.warning("%s: left out of the leaderboard: %s", task, reason)
            board.setdefault("skipped_tasks", {})[task] = reason
            continue
        try:
            rows = _score_task(task, entries, reference, n_resamples, seed)
        except BootstrapError as e:  # rare classes: the other tasks are still worth a table
            log.warning("%s: left out of the leaderboard: %s", task, e)
            board.setdefault("skipped_tasks", {})[task] = str(e)
            continue
        board["tasks"][task] = rows
    in_skipped -= {m for rows in board["tasks"].values() for m in rows}
    if not board["tasks"]:
        stale = [f for f in (out / "leaderboard.json", out / "leaderboard.md") if f.is_file()]
        for f in stale:  # a table that no longer matches the folder must not be read as current
            f.unlink()
        removed = "; the previous leaderboard removed" if stale else ""
        if board.get("skipped_tasks"):
            reasons = "; ".join(f"{t}: {r}" for t, r in board["skipped_tasks"].items())
            raise EcgcnnError(f"{out}: no task could be scored ({reasons}){removed}")
        raise EcgcnnError(
            f"{out}: no finished benchmark runs (TASK/MODEL/{FOLD}/metrics.json) found{removed}"
        )
    trained = sorted({m for rows in board["tasks"].values() for m in rows} - {NAIVE})
    if reference not in trained:
        if reference in unscorable:
            problem = f"--reference {reference}: {unscorable[reference]}"
        elif reference in in_skipped:
            skipped = ", ".join(board.get("skipped_tasks", {}))
            problem = (f"--reference {reference} was trained only in a task left out of the "
                       f"leaderboard ({skipped}); the scored tasks have {', '.join(trained)}")  # fmt: skip
        else:
            problem = f"--reference {reference} was not trained in this benchmark (it has {', '.join(trained)})"
        if strict:
            raise EcgcnnError(problem)
        log.warning("%s: the leaderboard has no paired differences", problem)
    atomic.write_json(out / "leaderboard.json", board)
    atomic.write_text(out / "leaderboard.md", leaderboard_markdown(board))
    return board


def _saved_reference(path: Path) -> str | None:
    """The reference of the folder's last leaderboard (a file this command rewrites: one that is
    unreadable is only warned of)."""
    if not path.is_file():
        return None
    try:
        saved = read_json(path)
    except EcgcnnError as e:
        log.warning("%s; it is written again", e)
        return None
    return saved.get("reference") if isinstance(saved, dict) else None


def _score_task(
    task: str, entries: dict[str, dict[str, Any]], reference: str, n_resamples: int, seed: int
) -> dict[str, Any]:
    """One task's rows: each model's bootstrap intervals, its paired difference to ``reference``
    and the naive baseline (the training-set prior)."""
    rows: dict[str, Any] = {}
    for name, e in entries.items():
        y, p = e["test"]["y_true"], e["test"]["y_prob"]
        boot = bootstrap_auc(y, p, e["config"]["classes"], n_resamples=n_resamples, seed=seed,
                             warn=False)  # fmt: skip
        row = {
            "roc_auc": boot.roc_auc.to_dict(),
            "pr_auc": boot.pr_auc.to_dict(),
            "excluded_classes": boot.excluded,
            "test_records": int(len(y)),
            "parameters": e["parameters"],
            "train_seconds": e["train_seconds"],
            "epochs": e["epochs"],
            "members": e["members"],
            "baseline": e["baseline"],
            "aux_task": e["aux_task"],
            "ema_decay": e["ema_decay"],
            "label_smoothing": e["label_smoothing"],
        }
        ref = entries.get(reference)
        if ref is not None and name != reference:
            if not np.array_equal(ref["test"]["ecg_ids"], e["test"]["ecg_ids"]):
                raise EcgcnnError(
                    f"{task}: {name} and {reference} were tested on different records"
                )
            paired = paired_bootstrap_auc(y, p, ref["test"]["y_prob"], e["config"]["classes"],
                                          n_resamples=n_resamples, seed=seed, warn=False)  # fmt: skip
            row["vs_reference"] = {"roc_auc_diff": paired.roc_auc_diff.to_dict(),
                                   "pr_auc_diff": paired.pr_auc_diff.to_dict()}  # fmt: skip
        rows[name] = row
    any_entry = next(iter(entries.values()))
    if any_entry["train"] is not None:
        prior = any_entry["train"]["y_true"].mean(axis=0)
        y = any_entry["test"]["y_true"]
        naive = bootstrap_auc(y, np.tile(prior, (len(y), 1)), any_entry["config"]["classes"],
                              n_resamples=n_resamples, seed=seed, warn=False)  # fmt: skip
        rows[NAIVE] = {"roc_auc": naive.roc_auc.to_dict(), "pr_auc": naive.pr_auc.to_dict(),
                       "excluded_classes": naive.excluded, "test_records": int(len(y)),
                       "parameters": 0, "train_seconds": 0.0, "epochs": 0, "members": 0}  # fmt: skip
    excluded = sorted({c for row in rows.values() for c in row["excluded_classes"]})
    if excluded:  # once per task, not once per model
        log.warning(
            "%s: %d class(es) without positives (or without negatives) in the test fold are "
            "left out of the bootstrap: %s", task, len(excluded), ", ".join(excluded),
        )  # fmt: skip
    return rows


def _ci(interval: dict[str, float]) -> str:
    return f"{interval['point']:.3f} ({interval['lower']:.3f} to {interval['upper']:.3f})"


def entry_label(model: str, row: dict[str, Any]) -> str:
    """A leaderboard entry's name for people: ``fcn_wang (2 members)`` for an ensemble; an entry
    that names its size (``fcn_wang-x2``) says it once; one trained on filtered records says how
    (``fcn_wang, highpass baseline``), with which auxiliary labels
    (``fcn_wang, all labels as auxiliary outputs``), and an averaged or smoothed one so
    (``fcn_wang, EMA 0.99, label smoothing 0.1``)."""
    members = row.get("members", 1)
    label = model if model.endswith(f"-x{members}") else model_label(model, members)
    baseline = row.get("baseline", "keep")
    if baseline != "keep":
        label += f", {baseline} baseline"
    if row.get("aux_task"):
        label += f", {row['aux_task']} labels as auxiliary outputs"
    if row.get("ema_decay"):
        label += f", EMA {row['ema_decay']:g}"
    if row.get("label_smoothing"):
        label += f", label smoothing {row['label_smoothing']:g}"
    return label


def summary_label(board: dict[str, Any], model: str) -> str:
    """An entry's name in the table across tasks: from a task where it learnt auxiliary labels,
    if any (a task's own labels are never its auxiliary ones, so that task's entry goes without)."""
    rows = [r[model] for r in board["tasks"].values() if model in r]
    return entry_label(model, next((r for r in rows if r.get("aux_task")), rows[0]))


def leaderboard_markdown(board: dict[str, Any]) -> str:
    """The leaderboard as markdown: macro ROC-AUC per model and task, then details per task."""
    tasks = list(board["tasks"])
    models = sorted(
        {m for rows in board["tasks"].values() for m in rows}, key=lambda m: (m == NAIVE, m)
    )
    lines = [
        "# Leaderboard",
        "",
        f"Macro ROC-AUC on the test fold with {int(board['level'] * 100)}% bootstrap intervals "
        f"({board['n_resamples']} resamples).",
        "",
        "| model | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for m in models:
        cells = [
            _ci(board["tasks"][t][m]["roc_auc"]) if m in board["tasks"][t] else "" for t in tasks
        ]
        lines.append(f"| {summary_label(board, m)} | " + " | ".join(cells) + " |")
    for task, rows in board["tasks"].items():
        lines += [
            "",
            f"## {task}",
            "",
            f"| model | parameters | train time | macro ROC-AUC | macro PR-AUC | ROC-AUC - {board['reference']} |",
            "|---|---|---|---|---|---|",
        ]
        for m, r in sorted(rows.items(), key=lambda kv: -kv[1]["roc_auc"]["point"]):
            diff = _ci(r["vs_reference"]["roc_auc_diff"]) if "vs_reference" in r else ""
            lines.append(
                f"| {entry_label(m, r)} | {r['parameters']:,} | {r['train_seconds'] / 60:.1f} min | {_ci(r['roc_auc'])} "
                f"| {_ci(r['pr_auc'])} | {diff} |"
            )
        outside = [m for m, r in rows.items() for k in ("roc_auc", "pr_auc")
                   if not r[k]["lower"] <= r[k]["point"] <= r[k]["upper"]]  # fmt: skip
        if outside:
            lines += ["", f"Point estimate outside its interval ({', '.join(sorted(set(outside)))}): "
                      "resamples must hold every class, so a class with one or two positives is "
                      "drawn with repeated positives, which favours its AUC (percentile intervals "
                      "as in the paper, not bias-corrected)."]  # fmt: skip
        excluded = sorted({c for r in rows.values() for c in r["excluded_classes"]})
        if excluded:
            lines += ["", f"Left out (no positives in the test fold): {', '.join(excluded)}."]
    for task, reason in board.get("skipped_tasks", {}).items():
        lines += ["", f"## {task}", "", f"{task}: not scored ({reason})."]
    return "\n".join(lines) + "\n"
