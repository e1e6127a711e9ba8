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
