"""Shared fixtures: a synthetic PTB-XL root (always) and the real development records (when present)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecgcnn.synthetic import write_synthetic_ptbxl

SHARED_DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "ptbxl-dev"


# where record caches would go without the fixture below, as the environment that ran pytest says
USER_CACHE = Path(os.environ.get("ECGCNN_CACHE", Path.home() / ".cache" / "ecgcnn"))


@pytest.fixture(scope="session")
def user_cache() -> Path:
    """The record-cache folder of whoever runs the tests, which no test may write to."""
    return USER_CACHE


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Record caches go to a temporary folder, never the user's ~/.cache. Session-wide: an autouse
    fixture of a narrower scope is set up after the session fixtures (served_checkpoint trains),
    and theirs went to ~/.cache/ecgcnn."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECGCNN_CACHE", str(tmp_path_factory.getbasetemp() / "ecgcnn-cache"))
        yield


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic PTB-XL root shared by the session: treat as read-only (copy it to change it)."""
    return write_synthetic_ptbxl(
        tmp_path_factory.mktemp("synthetic") / "ptbxl", n_patients=150, seed=0
    )


@pytest.fixture
def synthetic_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic root, for tests that damage it."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "ptbxl"))


@pytest.fixture(scope="session")
def dev_root() -> Path:
    """../shared/ptbxl-dev: the 1,732 real PTB-XL records, or a skip where it is absent."""
    root = SHARED_DEV.resolve()
    if not (root / "ptbxl_database.csv").is_file():
        pytest.skip(f"real PTB-XL development data not found at {root}")
    return root


@pytest.fixture(scope="session")
def served_checkpoint(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cnn1d trained for two epochs with the benchmark recipe (2.5 s windows) on synthetic data."""
    from ecgcnn.recipes import get_recipe
    from ecgcnn.train import TrainConfig, train

    out = tmp_path_factory.getbasetemp() / "served-checkpoint"
    if not (out / "fold_0" / "checkpoint.pt").is_file():
        recipe = get_recipe("benchmark").with_overrides(epochs=2, batch_size=32)
        train(TrainConfig(data_root=str(synthetic_root), out=str(out), folds=2, only_fold=0,
                          task="superdiagnostic", recipe=recipe, progress=False))  # fmt: skip
    return out / "fold_0" / "checkpoint.pt"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(checkpoint: Path, log: Path, *args: str, timeout_s: float = 90.0):
    """`ecgcnn serve` in a subprocess on a free loopback port: (process, base URL) once ready."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    cmd = [sys.executable, "-m", "ecgcnn", "serve", "--checkpoint", str(checkpoint),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGCNN_CHECKPOINT")}
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    # several workers share the socket, each loading its model: ready when every one answers, so
    # ask until /readyz has said yes many times in a row
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    streak = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ecgcnn serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                streak = streak + 1 if r.status == 200 else 0
                if streak >= 1 + 10 * (workers - 1):
                    return proc, url
        except OSError:
            streak = 0
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"ecgcnn serve not ready after {timeout_s} s:\n{log.read_text()}")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except Exception:
        proc.kill()


@pytest.fixture(scope="session")
def live_server(served_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real uvicorn (`ecgcnn serve`) on 127.0.0.1 serving ``served_checkpoint``: its base URL."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    proc, url = start_server(served_checkpoint, log, "--max-body-mb", "2")
    yield url
    stop_server(proc)


CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
)  # fmt: skip


def headless_chromium(profile: Path, window: str = "1280,900", browser_log: bool = False):
    """Debian's Chromium driven through chromedriver with a new, empty profile, or a skip saying
    what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip(
            "no chromium/chromedriver installed (Debian: apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--window-size={window}"):
        options.add_argument(flag)
    profile.mkdir(parents=True, exist_ok=True)  # nothing from an earlier run, nothing to sync
    options.add_argument(f"--user-data-dir={profile}")
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.fixture
def ecgcnn_here(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Run an ``ecgcnn`` command line in this process (``ecgcnn.cli.main``, the console script's
    entry point) and return it as a CompletedProcess: for the many refusals and quick runs that need
    no interpreter of their own (each subprocess costs seconds of Python and torch start-up)."""
    from ecgcnn import cache
    from ecgcnn.cli import main

    def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level  # main() replaces them: give them back
        with monkeypatch.context() as m:
            m.setattr(sys, "argv", ["ecgcnn", *map(str, args)])
            m.setattr(cache, "_WARNED_SKIPS", set())  # each command line is a fresh process
            if cwd is not None:
                m.chdir(cwd)
            code = 0
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            finally:
                root.handlers[:] = handlers
                root.setLevel(level)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
