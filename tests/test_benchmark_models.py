"""The benchmark architectures: forward shapes at 100 and 500 Hz, parameter counts, backward pass."""

import pytest
import torch
from torch import nn

from ecgcnn.errors import EcgcnnError
from ecgcnn.models import Classifier, count_parameters, create_model, keep_outputs, list_models

# computed from the reference code (helme/ecg_ptbxl_benchmarking) for 5 classes, kernel size 5
REFERENCE_PARAMETERS = {
    "xresnet1d18": 364_933,
    "xresnet1d34": 694_661,
    "xresnet1d50": 953_989,
    "xresnet1d101": 1_872_261,
    "resnet1d_wang": 473_349,
    "inception1d": 507_653,
    "fcn_wang": 309_765,
}
BENCHMARK_MODELS = sorted(REFERENCE_PARAMETERS)


def test_benchmark_models_are_registered():
    assert set(BENCHMARK_MODELS) <= set(list_models())


@pytest.mark.parametrize("name", BENCHMARK_MODELS)
def test_parameter_counts_match_the_reference(name):
    assert count_parameters(create_model(name, 5)) == REFERENCE_PARAMETERS[name]


@pytest.mark.parametrize("name", BENCHMARK_MODELS)
def test_only_the_output_layer_grows_with_the_classes(name):
    # the last Linear has 128 inputs: 129 parameters per extra class
    assert count_parameters(create_model(name, 71)) == REFERENCE_PARAMETERS[name] + 66 * 129


@pytest.mark.parametrize("name", BENCHMARK_MODELS)
def test_forward_at_100_and_500_hz(name):
    torch.manual_seed(0)
    model = create_model(name, 5).eval()
    with torch.no_grad():
        for samples in (250, 1000, 5000, 999):  # 2.5 s and 10 s at 100 Hz, 10 s at 500 Hz, odd
            out = model(torch.randn(1, 12, samples))
            assert out.shape == (1, 5)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", BENCHMARK_MODELS)
@pytest.mark.parametrize("classes", [1, 71])
def test_forward_with_any_number_of_classes(name, classes):
    # only the last layer depends on the classes, so one short input suffices
    model = create_model(name, classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 12, 250))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", BENCHMARK_MODELS)
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = Classifier(create_model(name, 5), torch.zeros(12), torch.ones(12)).train()
    x, y = torch.randn(2, 12, 250), torch.tensor([[1.0, 0, 1, 0, 1], [0, 1, 0, 1, 0]])
    nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", BENCHMARK_MODELS)
def test_models_split_into_features_and_head(name):
    model = create_model(name, 5).eval()
    with torch.no_grad():
        features = model.features(torch.randn(1, 12, 1000))
    assert features.ndim == 3  # (batch, channels, time): ready for per-time attributions
    assert model.head[-1].out_features == 5


def test_head_is_concat_pooling_bn_dropout_linear():
    head = create_model("resnet1d_wang", 7).head
    kinds = [type(m).__name__ for m in head]
    assert kinds == [
        "ConcatPool1d", "BatchNorm1d", "Dropout", "Linear", "ReLU",
        "BatchNorm1d", "Dropout", "Linear",
    ]  # fmt: skip
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.25, 0.5]
    assert head[3].in_features == 256 and head[3].out_features == 128


def test_concat_pooling_puts_max_before_mean():
    head = create_model("fcn_wang", 1).head
    x = torch.tensor([[[1.0, 3.0, 2.0]]])
    assert torch.equal(head[0](x), torch.tensor([[3.0, 2.0]]))


def test_inception_kernels_are_made_odd():
    model = create_model("inception1d", 5)
    sizes = [c.kernel_size[0] for c in model.features.blocks[0].convs]
    assert sizes == [39, 19, 9]


def test_reference_initialisation():
    model = create_model("xresnet1d18", 5)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert all(torch.all(m.bias == 0) for m in linears)


def test_kwargs_change_the_architecture():
    wide = create_model("xresnet1d18", 5, kernel_size=7)
    assert count_parameters(wide) > REFERENCE_PARAMETERS["xresnet1d18"]
    # kwargs arrive from JSON (config.json, checkpoint meta): lists instead of tuples
    small_head = create_model("resnet1d_wang", 5, head_hidden=[64], head_dropout=0.2)
    assert small_head.head[3].out_features == 64
    assert small_head(torch.randn(2, 12, 250)).shape == (2, 5)
    no_residual = create_model("inception1d", 5, residual=False).eval()
    assert no_residual(torch.randn(2, 12, 250)).shape == (2, 5)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("xresnet1d18", {"kernel_size": 0}, "kernel_size"),
        ("inception1d", {"kernel_size": 2}, "kernel_size"),
        ("inception1d", {"depth": 4}, "multiple of 3"),
        ("fcn_wang", {"head_dropout": 1.0}, "dropout"),
    ],
)
def test_bad_hyperparameters_are_user_errors(name, kwargs, message):
    with pytest.raises(EcgcnnError, match=message):
        create_model(name, 5, **kwargs)


@pytest.mark.parametrize("name", list_models())
def test_keep_outputs_cuts_the_output_layer_and_keeps_the_first_logits(name):
    torch.manual_seed(0)
    net = create_model(name, 8).eval()
    x = torch.randn(3, 12, 1000)
    with torch.no_grad():
        before = net(x)
        keep_outputs(net, 5)
        after = net(x)
    assert after.shape == (3, 5)
    # up to float rounding (untrained deep nets give logits in the hundreds)
    scale = float(before.abs().max())
    torch.testing.assert_close(after, before[:, :5], rtol=1e-5, atol=1e-6 * max(scale, 1.0))
    # the cut network is the ordinary 5-class one: its state dict loads there
    create_model(name, 5).load_state_dict(net.state_dict())


def test_keep_outputs_refuses_impossible_cuts():
    with pytest.raises(EcgcnnError, match="cannot keep 6 of the output layer's 5 outputs"):
        keep_outputs(create_model("cnn1d", 5), 6)
    with pytest.raises(EcgcnnError, match="has 5 outputs, not the network's 7"):
        keep_outputs(create_model("cnn1d", 5), 3, total=7)
    with pytest.raises(EcgcnnError, match="no linear output layer"):
        keep_outputs(nn.Conv1d(12, 4, 3), 2)
