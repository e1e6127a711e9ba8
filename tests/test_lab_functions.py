"""2-d test functions and the safe expression parser."""

import math

import pytest
import torch

from lossland.errors import LosslandError
from lossland.studies.optim.functions import Cubic, Expression, MonkeySaddle, Ravine, Rosenbrock, Saddle, check_point


def test_values_and_gradients_by_hand():
    x = torch.tensor([[1.0, 2.0], [-0.5, 0.3]], dtype=torch.float64)
    x1, x2 = x[:, 0], x[:, 1]
    torch.testing.assert_close(Saddle()(x), x1 ** 2 - x2 ** 2)
    torch.testing.assert_close(Saddle().grad(x), torch.stack([2 * x1, -2 * x2], -1))
    torch.testing.assert_close(MonkeySaddle().grad(x), torch.stack([3 * x1 ** 2 - 3 * x2 ** 2, -6 * x1 * x2], -1))
    torch.testing.assert_close(Cubic(bowl=0.0)(x), x1 ** 3)
    torch.testing.assert_close(Rosenbrock()(torch.tensor([1.0, 1.0])), torch.tensor(0.0))
    h = torch.autograd.functional.hessian(Ravine(condition=50, angle=30), torch.zeros(2, dtype=torch.float64))
    ev = torch.linalg.eigvalsh(h)
    torch.testing.assert_close(ev, torch.tensor([1.0, 50.0], dtype=torch.float64))


def test_expression_matches_the_builtin_function():
    e = Expression(expr="x1^3 - 3*x1*x2**2")
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(e(x), MonkeySaddle()(x))
    torch.testing.assert_close(e.grad(x), MonkeySaddle().grad(x))
    f = Expression(expr="sin(pi*x1) + exp(-x2) + sigmoid(x1) - 2")
    torch.testing.assert_close(f(torch.tensor([0.5, 0.0])), torch.tensor(1 + 1 + 1 / (1 + math.exp(-0.5)) - 2))
    assert Expression(expr="3")(torch.zeros(4, 2)).shape == (4,)


@pytest.mark.parametrize("expr", ["__import__('os').system('true')", "x1.real", "open('x')", "[x1]", "x3 + 1",
                                  "lambda: 1", "x1 if x2 else 0", "sin(x1, x2)", "x1 // 2", "'a'"])
def test_expression_refuses_everything_else(expr):
    with pytest.raises(LosslandError, match="not allowed"):
        Expression(expr=expr)


def test_expression_errors_are_one_line():
    with pytest.raises(LosslandError, match="is not a formula"):
        Expression(expr="x1 +")
    with pytest.raises(LosslandError, match="must be set"):
        Expression(expr=None)


@pytest.mark.parametrize("point", [[math.nan, 0], [0, math.inf], [1], "ab"])
def test_non_finite_or_malformed_points(point):
    with pytest.raises(LosslandError):
        check_point(point)
