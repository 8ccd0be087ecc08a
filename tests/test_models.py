import pytest
import torch

from ecgcnn.errors import EcgcnnError
from ecgcnn.models import Classifier, count_parameters, create_model, list_models
from ecgcnn.models.simple_cnn import ECGImage


def test_seed_parameter_counts_match_the_original():
    assert count_parameters(create_model("cnn1d", 5)) == 46_757
    assert count_parameters(create_model("cnn2d", 5)) == 6_613


def test_registry_lists_and_rejects_unknown_names():
    assert {"cnn1d", "cnn2d"} <= set(list_models())
    with pytest.raises(EcgcnnError, match="unknown model 'resnet9000'.*cnn1d"):
        create_model("resnet9000", 5)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(("classes", "samples"), [(1, 1000), (5, 1000), (23, 5000), (71, 250)])
def test_every_model_takes_raw_ecgs_of_any_length(name, classes, samples):
    model = create_model(name, classes).eval()
    out = model(torch.randn(3, 12, samples))
    assert out.shape == (3, classes)
    assert torch.isfinite(out).all()


def test_ecg_image_stacks_each_lead_over_five_rows():
    x = torch.arange(12, dtype=torch.float32).reshape(1, 12, 1).repeat(1, 1, 1000)
    image = ECGImage()(x)
    assert image.shape == (1, 1, 64, 256)
    rows = image[0, 0, :, 0]
    for lead in range(12):
        assert torch.all(rows[lead * 5 : lead * 5 + 5] == lead)
    assert torch.all(image[0, 0, 60:] == 0)


def test_ecg_image_resamples_linearly():
    ramp = torch.linspace(0, 1, 1000).reshape(1, 1, 1000).repeat(1, 12, 1)
    image = ECGImage()(ramp)
    assert torch.allclose(image[0, 0, 0], torch.linspace(0, 1, 256), atol=1e-6)


def test_classifier_standardises_with_its_buffers():
    net = torch.nn.Identity()
    model = Classifier(net, torch.full((12,), 2.0), torch.full((12,), 4.0))
    x = torch.full((1, 12, 10), 6.0)
    assert torch.allclose(model(x), torch.ones(1, 12, 10))
    assert "mean" in model.state_dict() and count_parameters(model) == 0
