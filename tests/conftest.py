"""Shared fixtures: a synthetic PTB-XL root (always) and the real development records (when present)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecgcnn.synthetic import write_synthetic_ptbxl

SHARED_DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "ptbxl-dev"


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Record caches go to a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("ECGCNN_CACHE", str(tmp_path_factory.getbasetemp() / "ecgcnn-cache"))


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
