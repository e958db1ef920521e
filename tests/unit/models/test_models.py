import pytest
import torch

from facessl.errors import FacesslError
from facessl.models import create_model, replace_head
from facessl.models.tinyvgg import TinyVGG


def test_tinyvgg_is_the_original_network():
    model = TinyVGG(num_classes=10)
    x = torch.zeros(2, 3, 64, 64)
    assert model.features(x).shape == (2, 128, 13, 13)
    assert model.embedding[1].in_features == 21632
    assert model(x).shape == (2, 10)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.padding) for c in convs] == [
        (3, 16, (0, 0)), (16, 32, (0, 0)), (32, 64, (0, 0)), (64, 128, (0, 0))]


def test_replacing_the_head_keeps_the_features():
    model = TinyVGG(num_classes=10, input_size=32)
    before = model.features[0].weight.clone()
    replace_head(model, 62)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 62)
    assert torch.equal(model.features[0].weight, before)


def test_efficientnet_has_imagenet_weights_and_a_new_head():
    pretrained = create_model("efficientnet_lite0", 5, 64)
    random = create_model("efficientnet_lite0", 5, 64, pretrained=False)
    assert pretrained(torch.zeros(2, 3, 64, 64)).shape == (2, 5)
    assert not torch.equal(pretrained.trunk._conv_stem.weight, random.trunk._conv_stem.weight)
    frozen = create_model("efficientnet_lite0", 5, 64, frozen_blocks=6)
    assert not frozen.trunk._blocks[5].parameters().__next__().requires_grad
    assert frozen.trunk._blocks[6].parameters().__next__().requires_grad


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(FacesslError, match="expected one of: tinyvgg, resnet18, efficientnet_lite0"):
        create_model("resnet9000", 3, 64)
