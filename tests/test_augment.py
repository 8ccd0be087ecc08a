"""Batch augmentation: each perturbation does what it says, is reproducible, and checks its settings."""

import numpy as np
import pytest
import torch

from ecgcnn.augment import Augment, baseline_wander, mixup
from ecgcnn.dataset import RecordDataset
from ecgcnn.errors import EcgcnnError
from ecgcnn.recipes import get_recipe


def batch(records=8, leads=12, samples=250, classes=5):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(records, leads, samples, generator=gen)
    y = (torch.rand(records, classes, generator=gen) > 0.5).float()
    return x, y


def test_all_off_is_the_identity():
    x, y = batch()
    aug = Augment()
    assert not aug.active
    x2, y2 = aug(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(x2, x) and torch.equal(y2, y)


def test_amplitude_scales_each_lead_by_one_positive_factor():
    x, y = batch()
    x2, y2 = Augment(scale_std=0.2)(x, y, torch.Generator().manual_seed(0))
    ratio = x2 / x
    # one factor per record and lead, constant over time, positive, not all 1
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-4)
    assert (ratio > 0).all() and not torch.allclose(ratio, torch.ones_like(ratio))
    assert torch.equal(y2, y)


def test_baseline_wander_is_slow_and_bounded():
    fs = 100
    w = baseline_wander(4, 12, 1000, fs, 0.3, torch.Generator().manual_seed(0))
    assert w.shape == (4, 12, 1000) and w.abs().max() <= 0.3 + 1e-6
    # below 0.5 Hz: most of the power sits below 1 Hz
    spectrum = torch.fft.rfft(w, dim=-1).abs() ** 2
    freqs = torch.fft.rfftfreq(1000, 1 / fs)
    assert spectrum[..., freqs < 1].sum() > 0.95 * spectrum.sum()


def test_lead_dropout_zeroes_whole_leads_at_about_its_rate():
    x, y = batch(records=200)
    x2, _ = Augment(lead_dropout=0.25)(x, y, torch.Generator().manual_seed(0))
    dropped = (x2 == 0).all(dim=-1)
    kept_same = (x2 == x).all(dim=-1)
    assert (dropped | kept_same).all()  # a lead is either untouched or zero
    assert 0.2 < dropped.float().mean() < 0.3


def test_mixup_makes_convex_combinations_with_matching_labels():
    x, y = batch(records=16)
    x2, y2 = mixup(x, y, 0.4, torch.Generator().manual_seed(0))
    assert x2.shape == x.shape and y2.shape == y.shape
    assert ((y2 >= 0) & (y2 <= 1)).all()
    # each mixed record is lam * own + (1 - lam) * partner with lam >= 0.5: recover lam from a label
    # vector and check the signal used the same weight with one of the batch's records
    for i in range(len(x)):
        for j in range(len(x)):
            diff = x[i] - x[j]
            if torch.allclose(diff, torch.zeros_like(diff)):
                lam = 1.0
            else:
                lam = float(((x2[i] - x[j]) * diff).sum() / (diff * diff).sum())
            if torch.allclose(lam * x[i] + (1 - lam) * x[j], x2[i], atol=1e-5):
                assert lam >= 0.5 - 1e-6
                assert torch.allclose(y2[i], lam * y[i] + (1 - lam) * y[j], atol=1e-5)
                break
        else:
            pytest.fail(f"record {i} is not a mix of itself with a record of the batch")


def test_augmentation_is_reproducible_for_a_generator_seed():
    x, y = batch()
    aug = Augment(noise_std=0.05, scale_std=0.1, wander_mv=0.1, lead_dropout=0.1, mixup_alpha=0.2)
    a = aug(x, y, torch.Generator().manual_seed(3))
    b = aug(x, y, torch.Generator().manual_seed(3))
    c = aug(x, y, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    "bad",
    [
        {"noise_std": -0.1},
        {"scale_std": float("nan")},
        {"wander_mv": float("inf")},
        {"lead_dropout": 1.0},
        {"lead_dropout": -0.1},
        {"mixup_alpha": -1.0},
        {"label_smoothing": 1.0},
        {"label_smoothing": -0.1},
    ],
)
def test_bad_settings_are_refused_with_their_name(bad):
    name = next(iter(bad))
    with pytest.raises(EcgcnnError, match=name):
        Augment(**bad)
    with pytest.raises(EcgcnnError, match=name):
        get_recipe("benchmark").with_overrides(**bad).validate()


def test_label_smoothing_moves_every_target_towards_one_half_and_leaves_the_signal():
    x, y = batch()
    aug = Augment(label_smoothing=0.1)
    assert aug.active
    x2, y2 = aug(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(x2, x)
    torch.testing.assert_close(y2, y * 0.9 + 0.05)
    assert y2.unique().tolist() == pytest.approx([0.05, 0.95])


def test_label_smoothing_applies_to_mixed_labels():
    x, y = batch()
    mixed = Augment(mixup_alpha=0.4)(x, y, torch.Generator().manual_seed(3))[1]
    both = Augment(mixup_alpha=0.4, label_smoothing=0.2)(x, y, torch.Generator().manual_seed(3))[1]
    torch.testing.assert_close(both, mixed * 0.8 + 0.1)


def test_settings_must_be_numbers():
    with pytest.raises(EcgcnnError, match="mixup_alpha must be a number, got '0.2'"):
        Augment(mixup_alpha="0.2")


def test_ema_decay_is_checked():
    with pytest.raises(EcgcnnError, match="ema_decay"):
        get_recipe("benchmark").with_overrides(ema_decay=1.0).validate()


def test_the_dataset_applies_the_recipe_augmentation_to_windowed_batches():
    data = np.random.default_rng(0).standard_normal((10, 12, 1000)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.arange(10) % 5]
    recipe = get_recipe("benchmark").with_overrides(lead_dropout=0.5, mixup_alpha=0.3)
    ds = RecordDataset(
        data, np.arange(10), y, recipe.augment(), torch.Generator().manual_seed(0), 250
    )
    x, yb = ds.__getitems__(list(range(10)))
    assert x.shape == (10, 12, 250) and yb.shape == (10, 5)
    assert (x == 0).all(dim=-1).any()  # some leads dropped
    assert not torch.equal(yb, torch.from_numpy(y))  # labels mixed
    np.testing.assert_allclose(
        yb.sum(dim=1).numpy(), 1.0, atol=1e-6
    )  # one-hot rows stay normalised
