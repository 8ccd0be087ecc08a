"""The ``ecgcnn`` command: a thin shell, each command parses its options and calls one library function."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
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
console = Console(stderr=True, soft_wrap=True)  # long paths stay whole when piped

DataRoot = Annotated[
    Path, typer.Option("--data-root", help="PTB-XL root (ptbxl_database.csv, records100/...).")
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Record cache folder (default: one per data root in $ECGCNN_CACHE, else "
        "~/.cache/ecgcnn).",
    ),
]
SkipMissing = Annotated[
    bool,
    typer.Option(
        "--skip-missing", help="Leave out missing or unreadable records (with a warning)."
    ),
]
Baseline = Annotated[
    str | None,
    typer.Option(
        help="Each lead's baseline: highpass (offset and drift, below 0.5 Hz, filtered out), "
        "median (an offset subtracted) or keep (as recorded). Default: as the model learnt its "
        "records; highpass for a model that learnt them as recorded (the recipes' default)."
    ),
]


def _setup_logging(verbose: bool = False) -> None:
    # Under torchrun every rank sees the same data and would say the same warnings: rank 0 speaks,
    # the others only for errors.
    rank = os.environ.get("RANK", "0")
    other_rank = rank != "0" and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.addLevelName(logging.WARNING, "warning")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_Formatter(f"rank {rank}: " if other_rank else ""))
        if other_rank:
            handler.addFilter(_rank_zero_speaks)


def _rank_zero_speaks(record: logging.LogRecord) -> bool:
    """On a torchrun rank other than 0: errors, and the warnings of its own node's record cache
    (another node's data copy may differ); the rest rank 0 says for all."""
    return record.levelno >= logging.ERROR or (
        record.levelno >= logging.WARNING and record.name.startswith("ecgcnn.cache")
    )


class _Formatter(logging.Formatter):
    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        msg = self.prefix + record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            msg += "\n" + self.formatException(record.exc_info)  # an unexpected failure's trace
        if record.levelno >= logging.ERROR:
            return f"error: {msg}"
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
    single = len(results["folds"]) == 1  # the benchmark split: no spread, but a test fold
    for name, m in results["folds"].items():
        table.add_row(f"{name} validation" if single else name, *(_fmt(m.get(k)) for k in keys))
    if not single:
        ms = results["mean_std"]
        table.add_row("mean ± std", *(f"{_fmt(ms[k]['mean'])}±{_fmt(ms[k]['std'])}" for k in keys))
    for part in ("holdout", "test"):
        if part in results and "ensemble" in results[part]:
            table.add_row(
                f"{part} ensemble", *(_fmt(results[part]["ensemble"].get(k)) for k in keys)
            )
        elif part in results:
            for name, m in results[part]["folds"].items():
                table.add_row(f"{name} {part}", *(_fmt(m.get(k)) for k in keys))
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
    write_run_report(out)


# What --resume may set beside the run folder: where and how this process runs, not what it trains.
RESUME_OPTIONS = {"resume", "only_fold", "device", "no_progress", "data_root", "cache_dir", "nproc"}


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", help="PTB-XL root (ptbxl_database.csv, records100/...)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to create.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue an interrupted run folder (its settings are reused)."),
    ] = None,
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
    lr: Annotated[
        float | None, typer.Option(help="Override the recipe's (peak) learning rate.")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Override the recipe's weight decay.")
    ] = None,
    window: Annotated[
        float | None, typer.Option(help="Train on random windows of this many seconds.")
    ] = None,
    stride: Annotated[
        float | None, typer.Option(help="Test-time window stride in seconds.")
    ] = None,
    aggregate: Annotated[str | None, typer.Option(help="Window aggregation: max or mean.")] = None,
    class_weighted: Annotated[
        bool | None,
        typer.Option("--class-weighted/--unweighted", help="Class-weighted BCE or plain."),
    ] = None,
    select_best: Annotated[
        bool | None,
        typer.Option(
            "--select-best/--keep-last", help="Keep the best validation epoch or the last."
        ),
    ] = None,
    noise: Annotated[
        float | None, typer.Option(help="Augmentation: Gaussian noise of this std (mV).")
    ] = None,
    scale_std: Annotated[
        float | None, typer.Option(help="Augmentation: log-amplitude jitter per lead (std).")
    ] = None,
    wander: Annotated[
        float | None, typer.Option(help="Augmentation: baseline wander up to this many mV.")
    ] = None,
    lead_dropout: Annotated[
        float | None, typer.Option(help="Augmentation: probability of zeroing each lead.")
    ] = None,
    mixup: Annotated[
        float | None, typer.Option(help="Augmentation: mixup with Beta(a, a) weights (0: off).")
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(help="Move each training target this far towards 1/2 (0: off)."),
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option(help="Score and keep an exponential moving average of the weights (decay)."),
    ] = None,
    aux_task: Annotated[
        str | None,
        typer.Option(
            help="Also learn this task's labels as extra outputs (cut off after training)."
        ),
    ] = None,
    members: Annotated[
        int | None,
        typer.Option(
            help="Train this many networks, each from its own seed, and average their "
            "probabilities (an ensemble: K times the training time)."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Each lead's baseline in the records learnt from and scored: keep (as recorded, "
            "the recipes' default), median (an offset subtracted) or highpass (below 0.5 Hz "
            "filtered out, as predict does by default). Stored in the checkpoint."
        ),
    ] = None,
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
    nproc: Annotated[
        int, typer.Option(help="Data-parallel processes on this machine (runs torchrun for you).")
    ] = 1,
    cache_dir: CacheDir = None,
    skip_missing: SkipMissing = False,
    no_progress: NoProgress = False,
) -> None:
    """Train a model with cross-validation or the benchmark split; one run = one folder."""
    given = {name for name in ctx.params
             if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"}  # fmt: skip
    other = {"cv": ["train_folds", "val_fold", "test_fold"], "benchmark": ["folds"]}.get(
        protocol, []
    )
    if resume is None and given & set(other):  # before torchrun: one error, not one a rank
        flags = [f"--{name.replace('_', '-')}" for name in other if name in given]
        wanted = "benchmark" if protocol == "cv" else "cv"
        raise EcgcnnError(
            f"{', '.join(flags)} {'apply' if len(flags) > 1 else 'applies'} to --protocol {wanted}, "
            f"not {protocol} (add --protocol {wanted}, or leave {'them' if len(flags) > 1 else 'it'}"
            " out)"
        )
    if nproc > 1 and "RANK" not in os.environ:
        run = resume if resume is not None else out
        with on_interrupt(
            (run or Path("-")) / "config.json", resume_command(run, only_fold, nproc)
        ):
            sys.exit(launch_torchrun(nproc))
    from ecgcnn.recipes import get_recipe
    from ecgcnn.train import TrainConfig, check_same_run, resume_config, train, work_in_run

    if resume is not None:
        ignored = [f"--{name.replace('_', '-')}" for name in ctx.params
                   if name not in RESUME_OPTIONS and name in given]  # fmt: skip
        if ignored:
            raise EcgcnnError(
                f"--resume continues with the run's saved settings; {', '.join(ignored)} cannot "
                "change them (train into a new --out instead)"
            )
        cfg = resume_config(
            resume, only_fold=only_fold, device=device, progress=not no_progress,
            data_root=str(data_root) if data_root else None,
            cache_dir=str(cache_dir) if cache_dir else None,
        )  # fmt: skip
        if data_root is None and not Path(cfg.data_root).is_dir():
            raise EcgcnnError(
                f"the run's data root {cfg.data_root} does not exist; if the data moved, add "
                "--data-root NEW_PATH"
            )
        with on_interrupt(resume / "config.json", resume_command(resume, only_fold)):
            results = train(cfg, resume=True)
        if results:
            report_training(results, cfg.model, cfg.task, cfg.protocol, resume, only_fold)
        return
    if data_root is None or out is None:
        raise EcgcnnError("train needs --data-root DIR and --out RUN_DIR (or --resume RUN_DIR)")
    cfg = TrainConfig(
        data_root=str(data_root),
        out=str(out),
        model=model,
        task=task,
        protocol=protocol,
        folds=folds,
        seed=seed,
        fs=fs,
        recipe=get_recipe(recipe).with_overrides(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            window_s=window,
            stride_s=stride,
            aggregate=aggregate,
            class_weighted=class_weighted,
            select_best=select_best,
            noise_std=noise,
            scale_std=scale_std,
            wander_mv=wander,
            lead_dropout=lead_dropout,
            mixup_alpha=mixup,
            label_smoothing=label_smoothing,
            ema_decay=ema,
            aux_task=aux_task,
            members=members,
            baseline=baseline,
        ),  # fmt: skip
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
    held = work_in_run(cfg)
    if held:  # the same command again (after Ctrl-C, a retried job) continues, never starts afresh
        check_same_run(out / "config.json", cfg.to_dict(), quiet=True)  # other settings: refused
        if os.environ.get("RANK", "0") == "0":
            print(f"{out} already holds {', '.join(held)}: continuing, as --resume would (delete "
                  "those folds to train them again)", file=sys.stderr)  # fmt: skip
    with on_interrupt(out / "config.json", resume_command(out, only_fold)):
        results = train(cfg, resume=bool(held))
    if results:  # ranks other than 0 under torchrun return nothing to report
        report_training(results, model, task, protocol, out, only_fold)


def check_outputs(
    *outputs: tuple[str, Path | None, bool], inputs: list[Path] = (), arrays: bool = False
) -> None:
    """Refuse, before any work, an output (option, path, is a folder) that cannot be written or
    that is one of the ``inputs`` (or a file of an input WFDB record, or a file an input folder's
    scan would read: .csv and .npy only with ``arrays``, as with --fs): named as typed."""
    from ecgcnn import atomic
    from ecgcnn.recording import ARRAY_SUFFIXES, FILE_SUFFIXES

    given, folders = set(), []
    for path in inputs:
        path = Path(path)
        if path.is_dir():
            folders.append(path.resolve())
            continue
        given.add(path.resolve())
        if path.suffix.lower() in ("", *WFDB_FILES):  # a record's name or one of its files
            given |= {path.with_suffix(s).resolve() for s in WFDB_FILES}
    for option, path, folder in outputs:
        if path is None:
            continue
        if not folder and path.resolve() in given:
            raise EcgcnnError(f"{option} {path} is one of the recordings to predict; choose "
                              "another file")  # fmt: skip
        inside = any(path.resolve().is_relative_to(f) for f in folders)
        read = {*FILE_SUFFIXES, *WFDB_FILES} - (set() if arrays else set(ARRAY_SUFFIXES))
        if not folder and inside and path.suffix.lower() in read:
            raise EcgcnnError(f"{option} {path} is in a folder being predicted, where a "
                              f"{path.suffix} file is read as a recording{' (with --fs)' if arrays else ''}; "
                              "write it elsewhere")  # fmt: skip
        problem = atomic.unwritable(path, folder)
        if problem:
            raise EcgcnnError(f"{option} {path} {problem}")


WFDB_FILES = (".hea", ".dat", ".mat")


def launch_torchrun(nproc: int) -> int:
    """Re-run this very command under torchrun with ``nproc`` processes (same arguments, minus --nproc)."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ecgcnn", *args]  # fmt: skip
    console.print(
        f"launching: torchrun --standalone --nproc_per_node={nproc} -m ecgcnn {' '.join(args)}"
    )
    # the ranks leave the Ctrl-C hint to this process
    return subprocess.call(cmd, env=os.environ | {"ECGCNN_LAUNCHED": "1"})


def report_training(
    results: dict[str, Any], model: str, task: str, protocol: str, out: Path, only_fold: int | None
) -> None:
    if only_fold is None:
        print_summary(results, f"{model} on {task} ({protocol})")
        console.print(f"results: {out / 'cv_results.json'}")
        write_run_report(out)
    else:
        console.print(f"fold {only_fold} done; merge folds with: ecgcnn cv-summary {out}")
    console.print(f"checkpoints: {out}/*/checkpoint.pt")


def write_run_report(run: Path) -> None:
    """RUN/report.html after a finished run; if it cannot be written, the trained run still stands."""
    from ecgcnn.report import write_report

    try:
        console.print(f"report: {write_report(run)}", soft_wrap=True, markup=False)
    except EcgcnnError as exc:
        logging.getLogger(__name__).warning("report not written: %s", exc)


def parse_folds(text: str) -> list[int]:
    """'1-8', '1,2,3' or a mix ('1-3,5') -> the sorted strat_folds."""
    folds: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lo, dash, hi = part.partition("-")
            first, last = int(lo), int(hi if dash else lo)
            if last < first:
                raise ValueError
            folds.update(range(first, last + 1))
    except ValueError:
        folds = set()
    if not folds:
        raise EcgcnnError(
            f"--train-folds {text!r}: expected a range like 1-8, a list like 1,2,3, or both: 1-3,5"
        )
    return sorted(folds)


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
    # an option of the other mode is an error, not ignored (--test-fold with --run scored nothing new)
    if run is not None:
        other = {"--data-root": data_root, "--test-fold": test_fold, "--out": out}
    else:
        other = {"--fold": fold}
    for flag, value in other.items():
        if value is not None:
            mode, use = ("--run", "--checkpoint") if run is not None else ("--checkpoint", "--run")
            raise EcgcnnError(f"{flag} does not apply to {mode} (it goes with {use})")
    if run is not None:
        results = evaluate_run(run, fold, threshold)
    else:
        if data_root is None:
            raise EcgcnnError("--checkpoint needs --data-root")
        target = out or checkpoint.parent / "evaluation"
        # before the records are read and scored
        check_outputs(("--out" if out else "the default output folder (give --out)", target, True))
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
    write_run_report(run)


@app.command()
def models() -> None:
    """List the registered models with their parameter counts (5 classes)."""
    from ecgcnn.models import count_parameters, create_model, list_models

    for name in list_models():
        print(f"{name}\t{count_parameters(create_model(name, 5)):,} parameters")


cache_app = typer.Typer(
    help="What the record caches hold and whether runs can use them; remove them to free disk.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")
CacheWhere = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="A record-cache folder, or a folder of them (default $ECGCNN_CACHE or ~/.cache/ecgcnn).",
    ),
]


def _wide_console() -> Console:
    """stdout, at the terminal's width, or 200 columns when piped (a table of paths wraps at 80)."""
    return Console(width=None if sys.stdout.isatty() else 200)


def _say(text: str) -> None:
    """A line on stderr, as written: paths may hold [brackets] that rich would take for markup."""
    console.print(text, markup=False, highlight=False)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _cache_table(files: list[Any], title: str) -> Table:
    import datetime

    from rich.markup import escape

    table = Table(title=escape(title))
    for col in ("folder", "data root", "cache", "records", "size", "written", "state"):
        right = col in ("records", "size")
        table.add_column(col, overflow="fold", justify="right" if right else "left")
    for f in files:
        when = datetime.datetime.fromtimestamp(f.modified) if f.modified else None
        cells = (f.folder.name, f.root or "", f.name, "" if f.records is None else f"{f.records:,}",
                 _mib(f.bytes), when.strftime("%Y-%m-%d %H:%M") if when else "",
                 "current" if f.usable else f.note)  # fmt: skip
        table.add_row(*map(escape, cells))
    return table


def _cache_folder(cache_dir: Path | None) -> Path:
    from ecgcnn.cache import cache_base

    if cache_dir is not None and not cache_dir.exists():
        raise EcgcnnError(f"--cache-dir {cache_dir}: no such folder")
    return cache_dir or cache_base()


@cache_app.command("list")
def cache_list(
    cache_dir: CacheWhere = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead.")
    ] = False,
) -> None:
    """Every cached file: its data root, rate and baseline, records, size, and whether runs can use it."""
    import dataclasses
    import json

    from ecgcnn.cache import scan_caches

    where = _cache_folder(cache_dir)
    files = scan_caches(where)
    if as_json:
        for f in files:
            fields = dataclasses.asdict(f) | {
                "folder": str(f.folder),
                "paths": list(map(str, f.paths)),
            }
            print(json.dumps(fields))
        return
    if not files:
        _say(f"no record caches in {where}")
        return
    _wide_console().print(_cache_table(files, f"record caches in {where}"))
    unused = [f for f in files if f.unused]
    said = (f"no run can use {len(unused)} of them ({_mib(sum(f.bytes for f in unused))}): "
            "`ecgcnn cache clear --unused` removes those") if unused else "none unused"  # fmt: skip
    _say(f"{len(files)} file(s), {_mib(sum(f.bytes for f in files))}; {said}")


@cache_app.command("clear")
def cache_clear(
    cache_dir: CacheWhere = None,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="Only the caches of this PTB-XL root.")
    ] = None,
    unused: Annotated[
        bool,
        typer.Option(
            "--unused",
            help="Only what no run can use as it is (data root not found or changed, an earlier "
            "build, an interrupted one).",
        ),
    ] = False,
    treated: Annotated[
        bool,
        typer.Option(
            "--treated",
            help="Only records cached with a baseline treatment (--baseline highpass|median); "
            "the record caches stay.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Remove every cache without asking.")
    ] = False,
) -> None:
    """Remove cached records (all, or only --unused / --treated / one --data-root's) to free disk.

    Runs rebuild what they need; a run that has a file open keeps reading it. What a build wrote within the last day is kept (it may still be running).
    """
    from ecgcnn.cache import default_cache_dir, remove_cache_files, scan_caches

    where = _cache_folder(cache_dir)
    files = scan_caches(where)
    running = [f for f in files if f.running]
    chosen = [f for f in files if not f.running]
    if data_root is not None:
        # its folder by name, where $ECGCNN_CACHE puts it or in the folder named, or by the root
        # its manifest gives
        root, folder = data_root.resolve(), default_cache_dir(data_root)
        folders = {folder, where / folder.name}
        chosen = [f for f in chosen if f.folder in folders or (f.root and Path(f.root).resolve() == root)]  # fmt: skip
    if unused:
        chosen = [f for f in chosen if f.unused]
    if treated:
        chosen = [f for f in chosen if f.kind == "treated"]
    kept = f"; kept {len(running)} file(s) of builds that may be running" if running else ""
    if not chosen:
        of = f" of {data_root}" if data_root is not None else ""
        _say(f"nothing{of} to remove in {where}{kept}")
        return
    size = _mib(sum(f.bytes for f in chosen))
    if dry_run:
        _wide_console().print(_cache_table(chosen, f"would remove from {where}"))
        _say(f"would remove {len(chosen)} file(s), {size}")
        return
    if data_root is None and not unused and not treated and not yes:
        question = f"remove every record cache in {where} ({len(chosen)} file(s), {size})"
        if not sys.stdin.isatty():
            raise EcgcnnError(f"{question}? pass --yes, or narrow it with --unused, --treated or "
                              "--data-root")  # fmt: skip
        if not typer.confirm(f"{question}?"):
            _say("nothing removed")
            raise typer.Exit(1)
    freed = remove_cache_files(chosen, keep=where)
    for f in chosen:
        _say(f"removed {f.folder / f.paths[0].name}" + ("" if f.usable else f": {f.note}"))
    _say(f"freed {_mib(freed)} in {where}{kept}")


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write a synthetic PTB-XL root into.")],
    patients: Annotated[int, typer.Option(help="Number of patients.")] = 150,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    rate: Annotated[
        list[int],
        typer.Option(help="Sampling rate(s) to write: 100 (always, as in PTB-XL), 500 (also)."),
    ] = [100],  # noqa: B006
) -> None:
    """Write a synthetic dataset in the PTB-XL on-disk layout (for trying the tools without PTB-XL)."""
    from ecgcnn.synthetic import write_synthetic_ptbxl

    other = sorted(set(rate) - {100, 500})
    if other:
        raise EcgcnnError(f"--rate {other[0]}: expected 100 or 500 (records100/, records500/)")
    rates = tuple(sorted({100, *rate}))
    write_synthetic_ptbxl(out, n_patients=patients, seed=seed, rates=rates, progress=True)
    console.print(f"wrote synthetic PTB-XL to {out}")


@app.command()
def predict(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Recordings: files, WFDB record names, directories (recursive)."),
    ],
    checkpoint: Annotated[
        Path, typer.Option(help="A checkpoint.pt, or a .onnx file from `ecgcnn export`.")
    ],
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    out: Annotated[
        Path | None, typer.Option(help="Write the output here (default stdout).")
    ] = None,
    fs: Annotated[
        float | None,
        typer.Option(
            help="Sampling rate (Hz) of .npy files, CSV without a time column, WFDB headers without one."
        ),
    ] = None,
    units: Annotated[
        str, typer.Option(help="Units of .npy / CSV files (without a units row): mV, uV or V.")
    ] = "mV",
    allow_missing_leads: Annotated[
        bool, typer.Option("--allow-missing-leads", help="Fill missing and flat leads with zeros.")
    ] = False,
    baseline: Baseline = None,
    threshold: Annotated[
        float | None, typer.Option(help="One threshold for every class instead of the stored ones.")
    ] = None,
    aggregate: Annotated[
        str | None,
        typer.Option(help="Windows of a long record: max or mean (default: the checkpoint's)."),
    ] = None,
    segment: Annotated[
        str | None, typer.Option(help="Only this part of each record, START:END in seconds.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Reader processes (default: automatic; 0 reads in-process).")
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            help="One prediction per this many seconds of each record (a timeline of a Holter), "
            "read a few minutes at a time."
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="With --every: draw each record's timeline as a PNG in this folder."),
    ] = None,
    no_progress: NoProgress = False,
) -> None:
    """Predict recordings (WFDB, EDF, DICOM, ECG XML, SCP-ECG, MFER, ISHNE; .npy/.csv with --fs); bad ones skipped."""
    from ecgcnn.predict import check_format, predict_files

    check_format(format)
    if plot is not None and every is None:
        raise EcgcnnError("--plot draws a timeline: it needs --every SECONDS")
    check_outputs(
        ("--out", out, False), ("--plot", plot, True), inputs=paths, arrays=fs is not None
    )
    nothing = "nothing written" + (
        f" ({out} is as it was)" if out is not None and out.exists() else ""
    )
    with on_interrupt(Path(os.devnull), nothing):  # the results are written once all are in
        result = predict_files(
            checkpoint, paths, fs=fs, units=units, allow_missing_leads=allow_missing_leads,
            segment=segment, threshold=threshold, aggregate=aggregate, workers=workers,
            progress=not no_progress, every=every, baseline=baseline,
        )  # fmt: skip
    if plot is not None:
        from ecgcnn.timeline import plot_timelines

        with on_interrupt(Path(os.devnull), f"{nothing}; the timelines drawn so far are in {plot}"):
            drawn = plot_timelines(result, plot)
        console.print(f"drew {len(drawn)} timeline(s) in {plot}")
    text = result.render(format)
    if out is None:
        sys.stdout.write(text)
    else:
        from ecgcnn import atomic

        atomic.write_text(out, text)
        console.print(f"wrote {out}")
    for failure in result.failures:
        print(f"failed: {failure}", file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    if result.failures:
        raise typer.Exit(1)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Option(help="The checkpoint.pt to export.")],
    out: Annotated[Path, typer.Option(help="Output file, e.g. model.onnx.")],
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
) -> None:
    """Export a checkpoint to ONNX (dynamic batch) with its metadata and a sidecar .json."""
    from ecgcnn.export import export_onnx, sidecar_path

    if format != "onnx":
        raise EcgcnnError(f"unknown export format {format!r}; expected onnx")
    info = export_onnx(checkpoint, out, opset)
    console.print(
        f"wrote {out} and {sidecar_path(out)} (max |ONNX - PyTorch| logit difference "
        f"{info['max_abs_diff_vs_pytorch']:.1e})"
    )


@app.command()
def serve(
    checkpoint: Annotated[
        Path,
        typer.Option(
            envvar="ECGCNN_CHECKPOINT",
            help="A checkpoint.pt, or a .onnx file from `ecgcnn export` (no explanations then).",
        ),
    ],
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every one).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes, each with the model.")] = 1,
    threads: Annotated[
        int, typer.Option(help="Inference threads per process (one torch thread each).")
    ] = 2,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body (413 beyond).")] = 8.0,
    max_duration: Annotated[
        float, typer.Option(help="Longest record accepted, in seconds.")
    ] = 120.0,
    max_batch: Annotated[int, typer.Option(help="Most records in one batch request.")] = 64,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a request body may take to arrive (408 beyond).")
    ] = 30.0,
    max_inflight_mb: Annotated[
        float | None,
        typer.Option(
            help="Request bodies held at once per process, in MB (default: 8 of the largest); "
            "past it a request waits its turn, then gets 503. Bounds memory under a burst."
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            help="uvicorn log level.",
            click_type=click.Choice(["critical", "error", "warning", "info", "debug", "trace"]),
        ),
    ] = "info",
) -> None:
    """Serve a model over HTTP: REST API (/v1/predict, /docs) and a web page at /."""
    from ecgcnn.predict import Predictor
    from ecgcnn.serve import MiB, Settings
    from ecgcnn.serve import serve as run_server

    if not 1 <= port <= 65535:
        raise EcgcnnError(f"--port must be 1-65535, got {port}")
    if min(workers, threads, max_batch) < 1 or min(max_body_mb, max_duration, body_timeout) <= 0:
        raise EcgcnnError("--workers, --threads, --max-batch, --max-body-mb, --max-duration and "
                          "--body-timeout must be positive")  # fmt: skip
    if max_inflight_mb is not None and max_inflight_mb < max_body_mb:
        raise EcgcnnError(f"--max-inflight-mb ({max_inflight_mb:g}) must hold the largest body "
                          f"(--max-body-mb {max_body_mb:g})")  # fmt: skip
    # fail here, with a clear message, rather than in every worker; one process serves this one
    predictor: Predictor | None = Predictor.load(checkpoint, threads=1)
    if workers > 1:
        predictor = None  # each worker loads its own; the supervising process holds none
    settings = Settings(str(checkpoint), int(max_body_mb * MiB), max_duration, max_batch, threads,
                        body_timeout, int(max_inflight_mb * MiB) if max_inflight_mb else None)  # fmt: skip
    console.print(f"serving {checkpoint} on http://{host}:{port} (API docs at /docs)")
    run_server(settings, host, port, workers, log_level, predictor)


@app.command("benchmark")
def benchmark_cmd(
    data_root: DataRoot,
    out: Annotated[Path, typer.Option(help="Benchmark folder (one run per task and model).")],
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks.")] = "superdiagnostic",
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated models; MODEL@RECIPE trains one with its own recipe, "
            "MODEL-xK as an ensemble of K networks (fcn_wang-x2)."
        ),
    ] = "cnn1d",
    recipe: Annotated[str, typer.Option(help="Training recipe.")] = "benchmark",
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    aggregate: Annotated[
        str | None, typer.Option(help="Window aggregation at test time: max or mean.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Override the recipe's batch size (per process).")
    ] = None,
    members: Annotated[
        int | None,
        typer.Option(
            help="Train each benchmark-recipe model without its own -xK as an ensemble of this "
            "many networks (own seeds)."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Each lead's baseline in the records the benchmark-recipe models learn from and "
            "are scored on: keep (as recorded, the default), median or highpass (below 0.5 Hz "
            "filtered out)."
        ),
    ] = None,
    aux_task: Annotated[
        str | None,
        typer.Option(
            help="Also teach the benchmark-recipe models of every other task this task's labels, "
            "as extra outputs (cut off after training)."
        ),
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option(
            help="Score and keep an exponential moving average of the benchmark-recipe models' "
            "weights (decay)."
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(
            help="Move each training target of the benchmark-recipe models this far towards 1/2."
        ),
    ] = None,
    train_folds: Annotated[str, typer.Option(help="Training strat_folds, e.g. 1-8.")] = "1-8",
    val_fold: Annotated[int, typer.Option(help="Validation strat_fold.")] = 9,
    test_fold: Annotated[int, typer.Option(help="Test strat_fold.")] = 10,
    reference: Annotated[str, typer.Option(help="Model the others are compared with.")] = "cnn1d",
    fs: Annotated[int, typer.Option(help="Sampling rate: 100 or 500.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed of every training run.")] = 42,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    cache_dir: CacheDir = None,
    skip_missing: SkipMissing = False,
    no_progress: NoProgress = False,
) -> None:
    """Train every model on every task with the strat_fold split and write the leaderboard."""
    from ecgcnn.benchmark import run_benchmark

    again = "run the same command again: finished models are kept, the one in progress resumes"
    with on_interrupt(out, again):
        board = run_benchmark(
            data_root, out, [t.strip() for t in tasks.split(",") if t.strip()],
            [m.strip() for m in models.split(",") if m.strip()], recipe=recipe,
            train_folds=parse_folds(train_folds), val_fold=val_fold, test_fold=test_fold,
            epochs=epochs, aggregate=aggregate, batch_size=batch_size, members=members,
            baseline=baseline, aux_task=aux_task, ema=ema, label_smoothing=label_smoothing,
            fs=fs, seed=seed,
            reference=reference, cache_dir=str(cache_dir) if cache_dir else None, device=device,
            progress=not no_progress, skip_missing=skip_missing,
        )  # fmt: skip
    print_leaderboard(board, out)


@app.command("leaderboard")
def leaderboard_cmd(
    run: Annotated[Path, typer.Argument(help="Benchmark folder written by `ecgcnn benchmark`.")],
    reference: Annotated[
        str | None,
        typer.Option(help="Model the others are compared with (default: the benchmark's)."),
    ] = None,
) -> None:
    """Recompute a benchmark's leaderboard from its saved predictions (no retraining)."""
    from ecgcnn.benchmark import leaderboard

    print_leaderboard(leaderboard(run, reference=reference), run)


def print_leaderboard(board: dict[str, Any], out: Path) -> None:
    from ecgcnn.benchmark import summary_label

    table = Table(title="macro ROC-AUC (90% bootstrap interval)")
    tasks = list(board["tasks"])
    table.add_column("model")
    for task in tasks:
        table.add_column(task, justify="right")
    models = sorted({m for rows in board["tasks"].values() for m in rows})
    for m in models:
        cells = []
        for t in tasks:
            r = board["tasks"][t].get(m)
            ci = r["roc_auc"] if r else None
            cells.append(
                f"{ci['point']:.3f} ({ci['lower']:.3f} to {ci['upper']:.3f})" if ci else ""
            )
        table.add_row(summary_label(board, m), *cells)
    console.print(table)
    console.print(f"leaderboard: {out / 'leaderboard.md'} and {out / 'leaderboard.json'}")


@app.command()
def download(
    dest: Annotated[Path, typer.Option(help="Folder to download PTB-XL into (created).")],
    version: Annotated[str, typer.Option(help="PTB-XL version on PhysioNet.")] = "1.0.3",
    rate: Annotated[str, typer.Option(help="Records to fetch: 100, 500 or both.")] = "100",
    base_url: Annotated[
        str | None,
        typer.Option(help="Folder URL, '{version}' filled in (default: PhysioNet's)."),
    ] = None,
    jobs: Annotated[int, typer.Option(help="Files fetched at a time.")] = 8,
    retries: Annotated[int, typer.Option(help="Retries of a failed request (backoff).")] = 5,
    no_progress: NoProgress = False,
) -> None:
    """Download PTB-XL from PhysioNet, verifying every file against its SHA256SUMS.txt."""
    from ecgcnn.download import download_ptbxl

    again = "run the same command again to resume (files already verified are kept)"
    with on_interrupt(dest, again):
        report = download_ptbxl(
            dest, version=version, rate=rate, base_url=base_url, jobs=jobs, retries=retries,
            progress=not no_progress,
        )  # fmt: skip
    for line in report.problems():
        print(f"failed: {line}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    if not report.succeeded:
        raise typer.Exit(1)


@app.command()
def verify(
    root: Annotated[Path, typer.Argument(help="A PTB-XL copy holding its SHA256SUMS.txt.")],
    rate: Annotated[
        str | None,
        typer.Option(help="Records to check: 100, 500 or both (default: the folders present)."),
    ] = None,
    no_progress: NoProgress = False,
) -> None:
    """Check a PTB-XL copy against its SHA256SUMS.txt: missing and mismatching files."""
    from ecgcnn.download import verify_ptbxl

    report = verify_ptbxl(root, rate=rate, progress=not no_progress)
    for line in report.problems():
        print(line, file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    if not report.succeeded:
        raise typer.Exit(1)


@app.command()
def explain(
    checkpoint: Annotated[Path, typer.Option(help="A trained checkpoint.pt.")],
    out: Annotated[Path, typer.Option(help="Folder for the PNG(s).")],
    record: Annotated[
        Path | None,
        typer.Option(
            help="A recording: WFDB (.hea), EDF, DICOM, ECG XML, SCP-ECG, ISHNE (.ecg), .npy or CSV (with --fs)."
        ),
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="PTB-XL root holding --ecg-id.")
    ] = None,
    ecg_id: Annotated[int | None, typer.Option(help="Record of --data-root to explain.")] = None,
    method: Annotated[
        str, typer.Option(help="saliency, integrated-gradients or gradcam.")
    ] = "saliency",
    class_name: Annotated[
        str | None, typer.Option("--class", help="Explain this class (default: the most likely).")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Explain the K most likely classes.")] = None,
    fs: Annotated[
        float | None, typer.Option(help="Sampling rate of a .npy or CSV --record (Hz).")
    ] = None,
    units: Annotated[
        str, typer.Option(help="Units of a .npy / CSV --record (without a units row): mV, uV or V.")
    ] = "mV",
    segment: Annotated[
        str | None,
        typer.Option(
            help="Only this part of --record, START:END in seconds (e.g. a Holter's episode)."
        ),
    ] = None,
    baseline: Baseline = None,
    allow_missing_leads: Annotated[
        bool, typer.Option("--allow-missing-leads", help="Fill missing and flat leads with zeros.")
    ] = False,
) -> None:
    """Where the model looks: attribution of one record drawn on ECG paper (PNG per class)."""
    from ecgcnn.explain import explain_record
    from ecgcnn.recording import parse_segment

    check_outputs(("--out", out, True))
    results = explain_record(checkpoint, out, record=record, data_root=data_root, ecg_id=ecg_id,
                             method=method, class_name=class_name, top=top, fs=fs,
                             units=units, segment=parse_segment(segment), baseline=baseline,
                             allow_missing_leads=allow_missing_leads)  # fmt: skip
    table = Table(title=f"explained with {method}")
    for column in ("class", "probability", "threshold", "call"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for r in results:
        call = (
            ""
            if r.threshold is None
            else ("positive" if r.probability >= r.threshold else "negative")
        )
        table.add_row(r.class_name, f"{r.probability:.3f}", _fmt(r.threshold), call)
    console.print(table)
    for r in results:
        for path in r.paths:
            print(path)


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run folder (config.json, fold_*/...).")],
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write (default: RUN/report.html).")
    ] = None,
    method: Annotated[
        str, typer.Option(help="Attribution of the explained examples.")
    ] = "integrated-gradients",
    no_examples: Annotated[
        bool, typer.Option("--no-examples", help="Leave out the explained ECGs (faster).")
    ] = False,
    data_root: Annotated[
        Path | None,
        typer.Option(
            help="Where the run's PTB-XL is now, for the explained ECGs (default: the run's own).",
        ),
    ] = None,
    cache_dir: CacheDir = None,
) -> None:
    """Rebuild a run's self-contained HTML report from its saved files (no retraining)."""
    from ecgcnn.report import write_report

    path = write_report(run, out, examples=not no_examples, method=method, cache_dir=cache_dir,
                        data_root=data_root)  # fmt: skip
    console.print(f"report: {path}", soft_wrap=True, markup=False)


def _print_version(value: bool) -> None:
    if value:
        from ecgcnn import __version__

        print(f"ecgcnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),  # fmt: skip
    ] = False,
) -> None:
    _setup_logging(verbose)


def resume_command(run: Path | None, only_fold: int | None, processes: int | None = None) -> str:
    """The command that continues ``run`` as this process would have (one fold, if it had one, in
    as many processes: by default the torchrun world this process is part of)."""
    if processes is None:
        processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
    fold = f" --only-fold {only_fold}" if only_fold is not None else ""
    nproc = f" --nproc {processes}" if processes > 1 else ""
    return f"resume with `ecgcnn train --resume {shlex.quote(str(run))}{fold}{nproc}`"


@contextmanager
def on_interrupt(evidence: Path, hint: str) -> Iterator[None]:
    """On Ctrl-C, say how to carry on (once ``evidence`` shows there is a run to resume) and exit 130.

    Handled here, inside the command, because typer turns a KeyboardInterrupt that leaves a command
    into a silent exit. Under torchrun only the launcher (``--nproc``) or rank 0 speaks.
    """
    try:
        yield
    except KeyboardInterrupt:
        speaks = os.environ.get("RANK", "0") == "0" and "ECGCNN_LAUNCHED" not in os.environ
        if speaks:
            said = f"interrupted: {hint}" if evidence.exists() else "interrupted"
            print(said, file=sys.stderr)
        raise typer.Exit(130) from None


# click's exceptions: the click package's, or the copy of click recent typer versions carry
_CLICK = sys.modules[typer.BadParameter.__module__]


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 1, never a traceback."""
    try:
        code = app(prog_name="ecgcnn", standalone_mode=False)  # usage errors: told as ours are
    except _CLICK.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `ecgcnn`: the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        see = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        print(f"error: {message}{see}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except _CLICK.ClickException as exc:
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort as exc:  # typer's word for an EOFError, and (older typer) a Ctrl-C
        if isinstance(exc.__cause__, EOFError):  # e.g. torch.load of an empty file
            print(f"error: unexpected end of a file ({exc.__cause__})", file=sys.stderr)
            sys.exit(1)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except EcgcnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # an unwritable --out or --cache-dir, a full disk, a path through a file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc} (check the path, its permissions and free space)",
              file=sys.stderr)  # fmt: skip
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code:  # typer.Exit(n) outside standalone mode comes back as n
        sys.exit(code)
