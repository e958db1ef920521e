import pytest
import torch
from torch import nn

from facessl.models.resnet import BasicBlock, ResNet18


@pytest.mark.parametrize("size, side", [(64, 8), (32, 4)])
@torch.no_grad()
def test_resnet18_shapes_at_64_and_32_pixels(size, side):
    model = ResNet18(num_classes=7, input_size=size)
    x = torch.randn(2, 3, size, size)
    assert model.features[:-2](x).shape == (2, 512, side, side)
    assert model.embed(x).shape == (2, 512)
    assert model(x).shape == (2, 7)
    assert model.embedding_dim == 512
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 512


def test_resnet18_is_the_small_image_variant():
    model = ResNet18(num_classes=10)
    stem = model.features[0]
    assert (stem.kernel_size, stem.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert len([m for m in model.modules() if isinstance(m, BasicBlock)]) == 8
    # The well-known count of CIFAR-style ResNet-18 with 10 classes.
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


@torch.no_grad()
def test_resnet18_takes_grey_input_and_refuses_tiny_images():
    assert ResNet18(num_classes=3, in_channels=1, input_size=32)(torch.randn(2, 1, 32, 32)).shape \
        == (2, 3)
    with pytest.raises(ValueError, match="at least 8 pixels.*got 4"):
        ResNet18(num_classes=3, input_size=4)


def test_each_block_of_a_new_resnet_starts_as_the_identity():
    first_block = ResNet18(num_classes=1).features[3]
    x = torch.randn(2, 64, 8, 8).relu()
    assert torch.allclose(first_block(x), x)
    assert not torch.allclose(BasicBlock(64, 64)(x), x)  # a bare block's branch is live
