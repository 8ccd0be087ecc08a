"""Training crops, test-time sliding windows and their aggregation."""

import numpy as np
import pytest
import torch

from ecgcnn.errors import EcgcnnError
from ecgcnn.windows import aggregate, random_windows, sliding_windows, window_starts


def ramp_records(records: int = 4, samples: int = 1000) -> torch.Tensor:
    """Each value encodes (record, lead, sample), so a crop tells where it came from."""
    r = torch.arange(records).reshape(-1, 1, 1) * 100_000
    lead = torch.arange(12).reshape(1, -1, 1) * 10_000
    t = torch.arange(samples).reshape(1, 1, -1)
    return (r + lead + t).float()


def test_random_windows_are_contiguous_crops_of_their_own_record():
    x = ramp_records(8)
    crops = random_windows(x, 250, torch.Generator().manual_seed(0))
    assert crops.shape == (8, 12, 250)
    starts = crops[:, 0, 0] - torch.arange(8) * 100_000
    for i, s in enumerate(starts.long().tolist()):
        assert 0 <= s <= 750
        assert torch.equal(crops[i], x[i, :, s : s + 250])


def test_random_windows_draw_a_start_per_record_over_every_position():
    x = ramp_records(500, samples=260)
    crops = random_windows(x, 250, torch.Generator().manual_seed(1))
    starts = set((crops[:, 0, 0] - torch.arange(500) * 100_000).long().tolist())
    assert starts == set(range(11))  # 0..10: both ends reachable, one start per record


def test_random_windows_are_reproducible_for_a_generator_seed():
    x = ramp_records(16)
    a = random_windows(x, 250, torch.Generator().manual_seed(3))
    b = random_windows(x, 250, torch.Generator().manual_seed(3))
    c = random_windows(x, 250, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_windows_take_numpy_and_full_length():
    x = ramp_records(3).numpy()
    crops = random_windows(x, 1000)
    assert isinstance(crops, torch.Tensor)
    assert torch.equal(crops, torch.from_numpy(x))


@pytest.mark.parametrize("length", [0, 1001, 2.5])
def test_random_windows_reject_impossible_lengths(length):
    with pytest.raises(EcgcnnError, match="length"):
        random_windows(ramp_records(2), length)


def test_random_windows_reject_a_wrong_shape():
    with pytest.raises(EcgcnnError, match=r"\(records, leads, samples\)"):
        random_windows(torch.zeros(12, 1000), 250)


def test_ten_seconds_at_2_5_over_1_25_s_give_seven_windows():
    assert window_starts(1000, 250, 125).tolist() == [0, 125, 250, 375, 500, 625, 750]
    assert len(window_starts(5000, 1250, 625)) == 7  # the same at 500 Hz
    windows = sliding_windows(ramp_records(2), 250, 125)
    assert windows.shape == (2, 7, 12, 250)


def test_sliding_windows_hold_the_right_samples_and_end_at_the_record_end():
    x = ramp_records(2)
    windows = sliding_windows(x, 300, 125)  # 125 does not divide 700: the last start is moved
    starts = window_starts(1000, 300, 125).tolist()
    assert starts == [0, 125, 250, 375, 500, 625, 700]
    for w, s in enumerate(starts):
        assert torch.equal(windows[:, w], x[:, :, s : s + 300])
    assert torch.equal(windows[:, -1, :, -1], x[:, :, -1])


def test_sliding_windows_reshape_for_the_model_without_copy_surprises():
    windows = sliding_windows(ramp_records(3).numpy(), 250, 125)
    assert windows.is_contiguous()
    flat = windows.reshape(-1, 12, 250)
    assert torch.equal(flat[7], windows[1, 0])


def test_one_window_when_the_window_is_the_record():
    assert sliding_windows(ramp_records(2), 1000, 125).shape == (2, 1, 12, 1000)


def test_sliding_windows_reject_bad_settings():
    with pytest.raises(EcgcnnError, match="stride"):
        sliding_windows(ramp_records(1), 250, 0)
    with pytest.raises(EcgcnnError, match="longer than the records"):
        sliding_windows(ramp_records(1), 2000, 125)


def test_max_and_mean_aggregation():
    probs = torch.tensor([[[0.1, 0.9], [0.7, 0.1], [0.1, 0.2]]])
    assert torch.allclose(aggregate(probs, "max"), torch.tensor([[0.7, 0.9]]))
    assert torch.allclose(aggregate(probs, "mean"), torch.tensor([[0.3, 0.4]]))
    assert torch.equal(aggregate(probs), aggregate(probs, "max"))  # the benchmark's default
    as_numpy = aggregate(probs.numpy(), "mean")
    assert isinstance(as_numpy, np.ndarray)
    np.testing.assert_allclose(as_numpy, [[0.3, 0.4]], rtol=1e-6)


def test_aggregate_rejects_unknown_methods_and_shapes():
    with pytest.raises(EcgcnnError, match="unknown aggregation 'median'"):
        aggregate(torch.zeros(1, 7, 5), "median")
    with pytest.raises(EcgcnnError, match=r"\(records, windows, classes\)"):
        aggregate(torch.zeros(7, 5))


def test_windows_through_a_model_and_back():
    from ecgcnn.models import create_model

    model = create_model("fcn_wang", 3).eval()
    windows = sliding_windows(ramp_records(2) / 1e5, 250, 125)
    with torch.no_grad():
        probs = torch.sigmoid(model(windows.reshape(-1, 12, 250))).reshape(2, 7, 3)
    assert aggregate(probs).shape == (2, 3)
