from __future__ import annotations

import pytest
import torch

from autoprune.models import ModelSpec, build_model


@pytest.mark.parametrize("name", ["vgg", "resnet20", "mobilenetv2", "cnn"])
@pytest.mark.parametrize("channels", [1, 3])
def test_zoo_forward(name, channels):
    model = build_model(ModelSpec(name, 0.25, channels, 7)).eval()
    out = model(torch.randn(2, channels, 32, 32))
    assert out.shape == (2, 7)


def test_vgg_width_multiplier():
    convs = [m for m in build_model(ModelSpec("vgg", 0.25, 1, 10)).modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert convs[0].in_channels == 1


def test_resnet20_has_residual_adds():
    model = build_model(ModelSpec("resnet20", 1.0, 3, 10))
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 21  # 19 + 2 shortcuts


def test_torchvision_model_adapted_to_channels():
    model = build_model(ModelSpec("torchvision:resnet18", 1.0, 1, 5)).eval()
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 5)


def tiny_entry(in_channels: int, num_classes: int):
    return torch.nn.Sequential(torch.nn.Conv2d(in_channels, 4, 3), torch.nn.Flatten(),
                               torch.nn.LazyLinear(num_classes))


def not_a_module():
    return 42


def test_user_entry_point():
    model = build_model(ModelSpec("tests.test_models:tiny_entry", 1.0, 2, 3))
    assert model(torch.randn(1, 2, 8, 8)).shape == (1, 3)
    with pytest.raises(TypeError, match="not an nn.Module"):
        build_model(ModelSpec("tests.test_models:not_a_module"))
    with pytest.raises(ValueError, match="no callable"):
        build_model(ModelSpec("tests.test_models:missing"))


def test_bad_specs_name_the_value():
    with pytest.raises(ValueError, match="'vgg19'"):
        ModelSpec("vgg19")
    with pytest.raises(ValueError, match="-1"):
        ModelSpec("vgg", width=-1)
