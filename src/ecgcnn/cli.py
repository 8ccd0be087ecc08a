"""The ``ecgcnn`` command: a thin shell, each command parses its options and calls one library function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecgcnn.errors import EcgcnnError

app = typer.Typer(
    help="Convolutional neural networks for 12-lead ECG classification on PTB-XL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)

DataRoot = Annotated[
    Path, typer.Option("--data-root", help="PTB-XL root (ptbxl_database.csv, records100/...).")
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Record cache folder (default ~/.cache/ecgcnn/...)."),
]
SkipMissing = Annotated[
    bool,
    typer.Option(
        "--skip-missing", help="Leave out missing or unreadable records (with a warning)."
    ),
]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.addLevelName(logging.WARNING, "warning")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_Formatter())


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return f"warning: {msg}" if record.levelno >= logging.WARNING else msg


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(results: dict[str, Any], title: str) -> None:
    """A rich table of per-fold metrics and their mean +- std."""
    keys = ("pr_auc_macro", "roc_auc_macro", "f1_macro", "f1_micro")
    table = Table(title=title)
    table.add_column("fold")
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    for name, m in results["folds"].items():
        table.add_row(name, *(_fmt(m.get(k)) for k in keys))
    ms = results["mean_std"]
    table.add_row("mean ± std", *(f"{_fmt(ms[k]['mean'])}±{_fmt(ms[k]['std'])}" for k in keys))
    for part in ("holdout", "test"):
        if part in results and "ensemble" in results[part]:
            table.add_row(
                f"{part} ensemble", *(_fmt(results[part]["ensemble"].get(k)) for k in keys)
            )
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run folder (the synthetic data goes inside).")] = Path(
        "runs/demo"
    ),
    patients: Annotated[int, typer.Option(help="Synthetic patients to generate.")] = 300,
    model: Annotated[str, typer.Option(help="Model name.")] = "cnn1d",
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (default: the seed recipe's 10).")
    ] = None,
    no_progress: NoProgress = False,
) -> None:
    """Generate synthetic PTB-XL, train cnn1d with 5-fold CV, evaluate, and say where everything is."""
    from ecgcnn.demo import run_demo

    results = run_demo(out, n_patients=patients, model=model, folds=folds, epochs=epochs,
                       progress=not no_progress)  # fmt: skip
    print_summary(results, f"demo: {model} on synthetic PTB-XL (validation folds)")
    console.print(f"results: {out / 'cv_results.json'}")
    console.print(f"checkpoints: {out}/fold_*/checkpoint.pt")
    console.print(f"confusion matrices: {out}/fold_*/evaluation/confusion_val_*.png")


@app.command("train")
def train_cmd(
    data_root: DataRoot,
    out: Annotated[Path, typer.Option(help="Run folder to create.")],
    model: Annotated[
        str, typer.Option(help="Registered model name (see `ecgcnn models`).")
    ] = "cnn1d",
    task: Annotated[
        str,
        typer.Option(help="top5, all, diagnostic, subdiagnostic, superdiagnostic, form, rhythm."),
    ] = "top5",
    protocol: Annotated[
        str, typer.Option(help="cv (K-fold by patient) or benchmark (strat_fold split).")
    ] = "cv",
    folds: Annotated[int, typer.Option(help="Number of cross-validation folds.")] = 5,
    recipe: Annotated[str, typer.Option(help="Named training defaults.")] = "seed",
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Override the recipe's batch size.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Override the recipe's learning rate.")] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed (splits, initialisation, shuffling).")
    ] = 42,
    fs: Annotated[
        int, typer.Option(help="Sampling rate: 100 (records100) or 500 (records500).")
    ] = 100,
    holdout_fold: Annotated[
        int | None, typer.Option(help="Keep this strat_fold out of CV and report on it.")
    ] = None,
    only_fold: Annotated[
        int | None, typer.Option(help="Train only this CV fold (0-based).")
    ] = None,
    train_folds: Annotated[
        str, typer.Option(help="benchmark: training strat_folds, e.g. 1-8 or 1,2,3.")
    ] = "1-8",
    val_fold: Annotated[int, typer.Option(help="benchmark: validation strat_fold.")] = 9,
    test_fold: Annotated[int, typer.Option(help="benchmark: test strat_fold.")] = 10,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    cache_dir: CacheDir = None,
    skip_missing: SkipMissing = False,
    no_progress: NoProgress = False,
) -> None:
    """Train a model with cross-validation or the benchmark split; one run = one folder."""
    from ecgcnn.recipes import get_recipe
    from ecgcnn.train import TrainConfig, train

    cfg = TrainConfig(
        data_root=str(data_root),
        out=str(out),
        model=model,
        task=task,
        protocol=protocol,
        folds=folds,
        seed=seed,
        fs=fs,
        recipe=get_recipe(recipe).with_overrides(epochs=epochs, batch_size=batch_size, lr=lr),
        holdout_fold=holdout_fold,
        only_fold=only_fold,
        train_folds=parse_folds(train_folds),
        val_fold=val_fold,
        test_fold=test_fold,
        skip_missing=skip_missing,
        cache_dir=str(cache_dir) if cache_dir else None,
        device=device,
        progress=not no_progress,
    )
    results = train(cfg)
    if only_fold is None:
        print_summary(results, f"{model} on {task} ({protocol})")
        console.print(f"results: {out / 'cv_results.json'}")
    else:
        console.print(f"fold {only_fold} done; merge folds with: ecgcnn cv-summary {out}")
    console.print(f"checkpoints: {out}/*/checkpoint.pt")


def parse_folds(text: str) -> list[int]:
    """'1-8' or '1,2,3' -> a list of strat_folds."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EcgcnnError(
            f"--train-folds {text!r}: expected a range like 1-8 or a list like 1,2,3"
        ) from None


@app.command()
def evaluate(
    run: Annotated[
        Path | None, typer.Option(help="Run folder: re-score its saved predictions.")
    ] = None,
    fold: Annotated[int | None, typer.Option(help="Only this fold of the run.")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint to score on --data-root.")
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="PTB-XL root for --checkpoint.")
    ] = None,
    test_fold: Annotated[
        int | None, typer.Option(help="Score only this strat_fold of --data-root.")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="One threshold for every class instead of the stored ones.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder for --checkpoint (default: beside it).")
    ] = None,
    cache_dir: CacheDir = None,
    skip_missing: SkipMissing = False,
    no_progress: NoProgress = False,
) -> None:
    """Metrics JSON and a confusion-matrix PNG per class, for a run or a checkpoint on a PTB-XL root."""
    from ecgcnn.evaluate import evaluate_checkpoint, evaluate_run

    if (run is None) == (checkpoint is None):
        raise EcgcnnError("give either --run RUN_DIR or --checkpoint PATH --data-root DIR")
    if run is not None:
        results = evaluate_run(run, fold, threshold)
    else:
        if data_root is None:
            raise EcgcnnError("--checkpoint needs --data-root")
        target = out or checkpoint.parent / "evaluation"
        results = {
            str(target): evaluate_checkpoint(
                checkpoint,
                data_root,
                target,
                test_fold,
                threshold,
                cache_dir,
                skip_missing,
                not no_progress,
            )  # fmt: skip
        }
    table = Table(title="evaluation")
    keys = ("records", "pr_auc_macro", "roc_auc_macro", "f1_macro", "f1_micro")
    table.add_column("predictions")
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    for name, m in results.items():
        table.add_row(name, str(m["records"]), *(_fmt(m[k]) for k in keys[1:]))
    console.print(table)
    for m in results.values():
        console.print(
            f"wrote {Path(m['plots'][0]).parent}/metrics_{m['split']}.json and {len(m['plots'])} confusion matrices"
        )


@app.command("cv-summary")
def cv_summary_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder whose folds are trained.")],
) -> None:
    """Merge the folds of a run (e.g. trained with --only-fold) into cv_results.json."""
    from ecgcnn.train import cv_summary

    results = cv_summary(run)
    print_summary(results, f"{results['model']} on {results['task']}")
    console.print(f"results: {run / 'cv_results.json'}")


@app.command()
def models() -> None:
    """List the registered models with their parameter counts (5 classes)."""
    from ecgcnn.models import count_parameters, create_model, list_models

    for name in list_models():
        print(f"{name}\t{count_parameters(create_model(name, 5)):,} parameters")


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write a synthetic PTB-XL root into.")],
    patients: Annotated[int, typer.Option(help="Number of patients.")] = 150,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    rate: Annotated[list[int], typer.Option(help="Sampling rate(s) to write: 100, 500.")] = [100],  # noqa: B006
) -> None:
    """Write a synthetic dataset in the PTB-XL on-disk layout (for trying the tools without PTB-XL)."""
    from ecgcnn.synthetic import write_synthetic_ptbxl

    write_synthetic_ptbxl(out, n_patients=patients, seed=seed, rates=tuple(rate), progress=True)
    console.print(f"wrote synthetic PTB-XL to {out}")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    _setup_logging(verbose)


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 1, never a traceback."""
    try:
        app()
    except EcgcnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
