"""2-d test functions f(x1, x2) for the optimizer lab, as torch callables on ``x[..., 2]`` (batched: any leading
shape, one value per point), so that autograd gives their gradients and many runs are evaluated at once.

Each function carries its plot window (``xlim``, ``ylim``), a default ``start`` point, its ``critical``
points (marked on plots), ``saddle`` (the saddle used by escape statistics, or None) and a suggested step size
``lr`` and number of ``steps`` for its trajectories (the lab's ``lr``/``steps`` default to them). They are
built from ``conf/function/<name>.yaml`` (``_target_`` classes). ``Expression`` parses a user formula in
x1, x2 with :mod:`ast`, allowing only numbers, the names x1, x2, pi, e, the operators + − * / ** and unary −,
and a fixed list of math functions — nothing else is ever evaluated.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence

import torch

from lossland.errors import LosslandError

__all__ = ["Function2d", "Cubic", "Saddle", "MonkeySaddle", "Ravine", "Rosenbrock", "Quadratic", "Expression",
           "check_point"]


def check_point(point, what: str = "start") -> list[float]:
    """A finite 2-d point as a list of floats, or a one-line :class:`LosslandError`."""
    try:
        values = [float(v) for v in point]
    except (TypeError, ValueError):
        raise LosslandError(f"{what} must be two numbers [x1, x2], got {point!r}") from None
    if len(values) != 2:
        raise LosslandError(f"{what} must be two numbers [x1, x2], got {len(values)} values")
    if not all(math.isfinite(v) for v in values):
        raise LosslandError(f"{what}={values} is not a finite point")
    return values


class Function2d:
    """Base class: ``f(x)`` for ``x`` of shape (..., 2) returns shape (...)."""

    name = "f"
    formula = "f(x1, x2)"  # matplotlib mathtext, for titles

    def __init__(self, start: Sequence[float] = (1.0, 1.0), xlim: Sequence[float] = (-2.0, 2.0),
                 ylim: Sequence[float] = (-2.0, 2.0), critical: Sequence[Sequence[float]] = (),
                 saddle: Sequence[float] | None = None, lr: float = 0.01, steps: int = 200):
        if not (math.isfinite(float(lr)) and float(lr) > 0):
            raise LosslandError(f"function.lr={lr} is not valid: it must be a positive number")
        self.lr, self.steps = float(lr), int(steps)
        self.start = check_point(start, "function.start")
        self.xlim = check_point(xlim, "function.xlim")
        self.ylim = check_point(ylim, "function.ylim")
        if not (self.xlim[0] < self.xlim[1] and self.ylim[0] < self.ylim[1]):
            raise LosslandError(f"function.xlim/ylim must be increasing pairs, got {self.xlim}, {self.ylim}")
        self.critical = [check_point(c, "function.critical") for c in critical]
        self.saddle = check_point(saddle, "function.saddle") if saddle is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.value(x[..., 0], x[..., 1])

    @property
    def title(self) -> str:
        """Plot title (matplotlib mathtext)."""
        return f"${self.formula}$"

    def value(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇f at every point of ``x`` (..., 2), by autograd (points are independent, so one backward of the
        sum gives every gradient)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self(x).sum(), x)
        return g

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.formula})"


class Cubic(Function2d):
    """f = x1³ + bowl·x2²: the lecture's x³ (an inflection point with zero gradient at 0, neither minimum nor
    maximum) along x1; ``bowl`` > 0 adds a valley along x2 so that the landscape is 2-d (bowl = 0: pure x³)."""

    name = "cubic"

    def __init__(self, bowl: float = 1.0, **kw):
        super().__init__(**kw)
        self.bowl = float(bowl)
        self.formula = "x_1^3" + (f" + {self.bowl:g} x_2^2" if self.bowl else "")

    def value(self, x1, x2):
        return x1 ** 3 + self.bowl * x2 ** 2


class Saddle(Function2d):
    """f = x1² − x2²: the strict saddle at 0 (Hessian diag(2, −2)); its stable manifold is the x1 axis."""

    name = "saddle"
    formula = "x_1^2 - x_2^2"

    def value(self, x1, x2):
        return x1 ** 2 - x2 ** 2


class MonkeySaddle(Function2d):
    """f = x1³ − 3·x1·x2²: the monkey saddle (three valleys; Hessian 0 at the origin: a degenerate saddle)."""

    name = "monkey_saddle"
    formula = "x_1^3 - 3 x_1 x_2^2"

    def value(self, x1, x2):
        return x1 ** 3 - 3 * x1 * x2 ** 2


class Quadratic(Function2d):
    """f = (a·x1² + b·x2²)/2, gradient (a·x1, b·x2): the ground truth for hand-derived optimizer steps."""

    name = "quadratic"

    def __init__(self, a: float = 1.0, b: float = 1.0, **kw):
        super().__init__(**kw)
        self.a, self.b = float(a), float(b)
        self.formula = f"({self.a:g} x_1^2 + {self.b:g} x_2^2)/2"

    def value(self, x1, x2):
        return 0.5 * (self.a * x1 ** 2 + self.b * x2 ** 2)


class Ravine(Function2d):
    """An ill-conditioned ravine: f = (x1'² + condition·x2'²)/2 in coordinates rotated by ``angle`` degrees
    (condition number = ``condition``), so that the narrow valley is not aligned with the axes."""

    name = "ravine"

    def __init__(self, condition: float = 50.0, angle: float = 30.0, **kw):
        super().__init__(**kw)
        if not (math.isfinite(condition) and condition >= 1):
            raise LosslandError(f"function.condition must be ≥ 1, got {condition}")
        self.condition, self.angle = float(condition), float(angle)
        self.formula = f"(u^2 + {self.condition:g}\\,v^2)/2,\\ (u, v) = x\\ \\mathrm{{rotated}}\\ {self.angle:g}^\\circ"

    def value(self, x1, x2):
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        u, v = c * x1 + s * x2, -s * x1 + c * x2
        return 0.5 * (u ** 2 + self.condition * v ** 2)


class Rosenbrock(Function2d):
    """f = (a − x1)² + b·(x2 − x1²)²: the banana valley, minimum at (a, a²)."""

    name = "rosenbrock"

    def __init__(self, a: float = 1.0, b: float = 100.0, **kw):
        super().__init__(**kw)
        self.a, self.b = float(a), float(b)
        self.formula = f"({self.a:g} - x_1)^2 + {self.b:g}(x_2 - x_1^2)^2"

    def value(self, x1, x2):
        return (self.a - x1) ** 2 + self.b * (x2 - x1 ** 2) ** 2


_FUNCS = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "abs": torch.abs,
    "sinh": torch.sinh, "cosh": torch.cosh, "atan": torch.atan, "softplus": torch.nn.functional.softplus,
}
_CONSTS = {"pi": math.pi, "e": math.e}
_BINOPS = {ast.Add: torch.add, ast.Sub: torch.sub, ast.Mult: torch.mul, ast.Div: torch.div, ast.Pow: torch.pow}


class Expression(Function2d):
    """A user formula in x1 and x2, e.g. ``"x1**4 - x1**2 + x2**2"`` (``^`` is accepted for ``**``).

    Allowed: numbers, x1, x2, pi, e, + − * / ** (or ^), unary ±, parentheses and the functions
    abs, atan, cos, cosh, exp, log, sigmoid, sin, sinh, softplus, sqrt, tan, tanh (one argument each).
    Anything else is refused with one line naming what is allowed."""

    name = "expression"

    def __init__(self, expr: str | None = None, **kw):
        super().__init__(**kw)
        if expr is None or not str(expr).strip():
            raise LosslandError("function.expr must be set for function=expression "
                                "(e.g. function.expr='x1**4 - x1**2 + x2**2')")
        self.expr = str(expr).strip()
        self.formula = self.expr
        self._parse()

    @property
    def title(self) -> str:
        return f"f = {self.expr}"

    def _parse(self) -> None:
        try:
            tree = ast.parse(self.expr.replace("^", "**"), mode="eval")
        except SyntaxError as e:
            raise LosslandError(f"function.expr={self.expr!r} is not a formula: {e.msg}") from None
        self._check(tree.body)
        self._tree = tree.body
        value = self(torch.tensor(self.start, dtype=torch.float64))  # also catches x1(2)-style misuse early
        if value.dim() != 0:
            raise LosslandError(f"function.expr={self.expr!r} does not give one number per point")

    def _check(self, node: ast.AST) -> None:
        allowed = ("numbers, x1, x2, pi, e, + - * / ** ^, and the functions " + ", ".join(sorted(_FUNCS)))
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return
        if isinstance(node, ast.Name) and (node.id in ("x1", "x2") or node.id in _CONSTS):
            return
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            self._check(node.left)
            self._check(node.right)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            self._check(node.operand)
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS \
                and len(node.args) == 1 and not node.keywords:
            self._check(node.args[0])
            return
        what = ast.unparse(node) if hasattr(ast, "unparse") else type(node).__name__
        raise LosslandError(f"function.expr={self.expr!r}: {what!r} is not allowed; allowed: {allowed}")

    def _eval(self, node: ast.AST, x1: torch.Tensor, x2: torch.Tensor):
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return {"x1": x1, "x2": x2}.get(node.id, _CONSTS.get(node.id))
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, x1, x2), self._eval(node.right, x1, x2)
            if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
                a = torch.tensor(a, dtype=x1.dtype)
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, x1, x2)
            return -v if isinstance(node.op, ast.USub) else v
        v = self._eval(node.args[0], x1, x2)
        return _FUNCS[node.func.id](v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=x1.dtype))

    def value(self, x1, x2):
        out = self._eval(self._tree, x1, x2)
        if not isinstance(out, torch.Tensor):
            out = torch.tensor(out, dtype=x1.dtype)
        return out + torch.zeros_like(x1)  # a constant formula still gives one value per point
