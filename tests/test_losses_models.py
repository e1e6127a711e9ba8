import torch

from lossland.losses import MSE, CrossEntropy, CubicHinge
from lossland.models import MLP, ConvNetSI


def test_mse_convention():
    out, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    onehot = torch.nn.functional.one_hot(y, 3).float()
    assert torch.allclose(MSE()(out, y), ((out - onehot) ** 2).sum(1).mean())
    assert torch.allclose(MSE(per_class_mean=True)(out, y), torch.nn.functional.mse_loss(out, onehot))


def test_hinge_and_ce():
    out, y = torch.tensor([[2.0], [0.5], [-0.2]]), torch.tensor([1, 1, 0])
    assert torch.allclose(CubicHinge()(out, y), torch.tensor((0 + 0.5**3 + 0.8**3) / 3))
    assert CubicHinge().predict(out).tolist() == [1, 1, 0]
    logits = torch.randn(4, 3)
    assert torch.allclose(CrossEntropy()(logits, torch.zeros(4, dtype=torch.long)),
                          -torch.log_softmax(logits, 1)[:, 0].mean())


def test_convnet_si_frozen_last_layer_norm():
    m = ConvNetSI((1, 32, 32), 10, width=0.25, last_norm=1.5)
    assert not m.classifier.weight.requires_grad
    assert torch.isclose(m.classifier.weight.norm(), torch.tensor(1.5))
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_mlp_shapes():
    m = MLP((100,), 1, hidden=[50, 25], activation="sigmoid")
    assert [lin.out_features for lin in m.linears] == [50, 25, 1]


def test_shallow_conv_is_keskars_c1_shape_at_any_width_and_image_side():
    import pytest
    from torch import nn

    from lossland.models import ShallowConv

    c1 = ShallowConv((3, 32, 32), 10)  # Keskar et al.'s C1 on CIFAR-10: 32 → 16 → 8, 64·8·8 into FC 384, 192
    kinds = [type(m) for m in c1.features]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d] * 2 + [nn.Flatten]
    assert [m.kernel_size for m in c1.features if isinstance(m, nn.Conv2d)] == [(5, 5), (5, 5)]
    lins = [m for m in c1.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lins] == [(64 * 8 * 8, 384), (384, 192), (192, 10)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in c1.classifier) == 2
    assert [m.p for m in c1.classifier if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    small = ShallowConv((1, 8, 8), 10, channels=[32, 32], hidden=[192, 96], dropout=0.0)  # digits: 8 → 4 → 2
    assert [m.in_features for m in small.classifier if isinstance(m, nn.Linear)][0] == 32 * 2 * 2
    assert not any(isinstance(m, nn.Dropout) for m in small.classifier)
    assert small.eval()(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    for bad, match in (({"kernel": 4}, "odd kernel"), ({"dropout": 1.0}, "dropout")):
        with pytest.raises(ValueError, match=match):
            ShallowConv((1, 8, 8), 10, **bad)
    with pytest.raises(ValueError, match="image inputs"):
        ShallowConv((64,), 10)
