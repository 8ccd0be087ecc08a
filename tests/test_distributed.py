"""torchrun data-parallel training: 2 gloo processes on CPU agree with one process on labels and splits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ecgcnn.distributed import World, shard

pytestmark = pytest.mark.slow


def test_shards_pad_like_distributed_sampler():
    import torch.utils.data as tud

    for n, size in ((10, 2), (11, 2), (7, 3), (1, 2)):
        for rank in range(size):
            sampler = tud.DistributedSampler(range(n), num_replicas=size, rank=rank, shuffle=False)
            assert shard(n, World(rank, size)).tolist() == list(sampler)


def run(args, **kw):
    env = os.environ | {"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ecgcnn", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, **kw)  # fmt: skip


def test_two_process_run_matches_the_single_process_run(synthetic_root, tmp_path):
    common = ["train", "--data-root", synthetic_root, "--folds", 2, "--epochs", 2, "--batch-size", 16,
              "--only-fold", 0, "--no-progress"]  # fmt: skip
    two = run([*common, "--out", tmp_path / "two", "--nproc", 2])
    assert two.returncode == 0, two.stderr[-3000:]
    assert "launching: torchrun" in two.stderr
    one = run([*common, "--out", tmp_path / "one"])
    assert one.returncode == 0, one.stderr[-3000:]

    config_two = json.loads((tmp_path / "two" / "config.json").read_text())
    config_one = json.loads((tmp_path / "one" / "config.json").read_text())
    assert config_two["world_size"] == 2 and config_one["world_size"] == 1
    assert config_two["classes"] == config_one["classes"]
    assert (json.loads((tmp_path / "two" / "splits.json").read_text())
            == json.loads((tmp_path / "one" / "splits.json").read_text()))  # fmt: skip

    assert len(list((tmp_path / "two").rglob("checkpoint.pt"))) == 1
    val_ids = json.loads((tmp_path / "one" / "splits.json").read_text())["splits"]["fold_0"][
        "val_ecg_ids"
    ]
    gathered = np.load(tmp_path / "two" / "fold_0" / "predictions_val.npz")
    assert len(gathered["ecg_ids"]) == len(val_ids) == len(set(gathered["ecg_ids"].tolist()))
    assert sorted(gathered["ecg_ids"].tolist()) == sorted(val_ids)
    assert np.isfinite(gathered["y_prob"]).all()
    # every rank scored its share with the saved model (rank 0's BatchNorm statistics)
    from ecgcnn import load_model
    from ecgcnn.cache import load_signals
    from ecgcnn.evaluate import predict_proba
    from ecgcnn.records import load_database

    model = load_model(tmp_path / "two" / "fold_0" / "checkpoint.pt")
    signals = load_signals(load_database(synthetic_root), 100, progress=False)
    prob = predict_proba(model, signals.data, signals.rows(gathered["ecg_ids"]))
    np.testing.assert_allclose(prob, gathered["y_prob"], atol=1e-5)


def test_two_process_ema_run_saves_the_model_it_validated(synthetic_root, tmp_path):
    """Under DDP each rank averages its own BatchNorm statistics; validation must use rank 0's, the saved ones."""
    from ecgcnn import load_model
    from ecgcnn.cache import load_signals
    from ecgcnn.evaluate import predict_proba
    from ecgcnn.records import load_database

    out = tmp_path / "ema"
    proc = run(["train", "--data-root", synthetic_root, "--folds", 2, "--epochs", 2, "--batch-size", 16,
                "--only-fold", 0, "--no-progress", "--task", "superdiagnostic", "--ema", 0.5,
                "--aux-task", "diagnostic", "--mixup", 0.2, "--baseline", "highpass", "--out", out,
                "--nproc", 2])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = np.load(out / "fold_0" / "predictions_val.npz")
    model = load_model(out / "fold_0" / "checkpoint.pt")
    assert len(model.meta["classes"]) == saved["y_prob"].shape[1] == 5
    # both ranks learnt and scored filtered records (rank 0 cached them, rank 1 opened its file)
    assert model.meta["baseline"] == "highpass"
    signals = load_signals(load_database(synthetic_root), 100, progress=False, baseline="highpass")
    prob = predict_proba(model, signals.data, signals.rows(saved["ecg_ids"]))
    np.testing.assert_allclose(prob, saved["y_prob"], atol=1e-5)


def test_two_process_ensemble_scores_and_saves_every_member(synthetic_root, tmp_path):
    """Members train one after another on both ranks; the ensemble's validation scores are gathered."""
    from ecgcnn import load_model
    from ecgcnn.cache import load_signals
    from ecgcnn.evaluate import predict_proba
    from ecgcnn.records import load_database

    out = tmp_path / "pair"
    proc = run(["train", "--data-root", synthetic_root, "--folds", 2, "--epochs", 1, "--batch-size", 16,
                "--only-fold", 0, "--no-progress", "--members", 2, "--out", out, "--nproc", 2])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = load_model(out / "fold_0" / "checkpoint.pt")
    assert len(model.net.members) == 2
    saved = np.load(out / "fold_0" / "predictions_val.npz")
    signals = load_signals(load_database(synthetic_root), 100, progress=False)
    prob = predict_proba(model, signals.data, signals.rows(saved["ecg_ids"]))
    np.testing.assert_allclose(prob, saved["y_prob"], atol=1e-5)
    assert not list((out / "fold_0").glob("member*.pt"))


def test_each_rank_draws_its_own_windows_and_repeats_them_on_resume():
    import torch

    from ecgcnn.distributed import reseed_for_rank
    from ecgcnn.windows import random_windows

    x = torch.arange(4 * 12 * 1000, dtype=torch.float32).reshape(4, 12, 1000)

    def crops(rank: int, epoch: int, size: int = 2) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        reseed_for_rank(gen, 7, epoch, World(rank, size))
        return random_windows(x, 250, gen)

    assert not torch.equal(crops(0, 1), crops(1, 1))  # ranks differ
    assert not torch.equal(crops(0, 1), crops(0, 2))  # epochs differ
    assert torch.equal(crops(1, 3), crops(1, 3))  # a resumed epoch draws the same
    # a single process keeps its running generator (its state is what state.pt saves)
    assert torch.equal(crops(0, 1, size=1), crops(0, 5, size=1))
