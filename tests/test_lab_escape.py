"""Vectorized noisy-GD escape statistics."""

import time

import numpy as np
import pytest
import torch

from lossland.errors import LosslandError
from lossland.optim import NoisyGD
from lossland.studies.optim.escape import escape_stats, noisy_gd, predicted_median
from lossland.studies.optim.functions import MonkeySaddle, Saddle


@pytest.mark.parametrize("fn", [Saddle(saddle=[0, 0]), MonkeySaddle(saddle=[0, 0])])
def test_closed_form_agrees_with_the_noisy_gd_optimizer_step_for_step(fn):
    lr, sigma, steps = 0.02, 0.05, 30  # small enough that the monkey saddle run stays finite
    theta = torch.nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))
    opt = NoisyGD([theta], lr=lr, sigma=sigma, generator=torch.Generator().manual_seed(7))
    ref = [theta.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        fn(theta).backward()
        opt.step()
        ref.append(theta.detach().clone())
    x0 = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    _, _, path = noisy_gd(fn, x0, lr, sigma, steps, torch.Generator().manual_seed(7), path=True)
    assert torch.isfinite(path).all()
    torch.testing.assert_close(path[:, 0], torch.stack(ref), rtol=1e-12, atol=1e-14)


def test_thousands_of_runs_in_seconds_and_the_strict_saddle_prediction():
    fn = Saddle(saddle=[0, 0])
    t0 = time.time()
    s = escape_stats(fn, sigmas=[1e-4, 1e-2], lrs=[0.05, 0.1], runs=2000, max_steps=500, radius=1.0, seed=0)
    assert time.time() - t0 < 10
    assert s.times.shape == (2, 2, 2000)
    rows = s.rows(fn)
    assert all(r["escaped"] == 1.0 for r in rows)
    for r in rows:  # median escape time = log(r / (0.6745·sd)) / log(1 + 2λ) within a step or two
        assert abs(r["median"] - r["predicted"]) <= 2.0, r
    med = {(r["sigma"], r["lr"]): r["median"] for r in rows}
    assert med[(1e-2, 0.05)] < med[(1e-4, 0.05)] and med[(1e-4, 0.1)] < med[(1e-4, 0.05)]


def test_without_noise_gd_never_leaves_the_saddle():
    s = escape_stats(Saddle(saddle=[0, 0]), sigmas=[0.0], lrs=[0.1], runs=10, max_steps=200)
    assert np.isnan(s.times).all() and s.rows()[0]["escaped"] == 0.0
    assert np.isnan(predicted_median(MonkeySaddle(saddle=[0, 0]), 0.1, 0.1, 1.0))  # not a strict saddle


def test_same_seed_same_times():
    a = escape_stats(MonkeySaddle(saddle=[0, 0]), [0.1], [0.1], runs=100, max_steps=300, seed=3).times
    b = escape_stats(MonkeySaddle(saddle=[0, 0]), [0.1], [0.1], runs=100, max_steps=300, seed=3).times
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kw, match", [({"sigmas": [-0.1]}, "σ must be a finite number ≥ 0"),
                                       ({"lrs": [0.0]}, "positive"), ({"runs": 0}, "runs ≥ 1")])
def test_bad_input(kw, match):
    args = {"sigmas": [0.1], "lrs": [0.1], "runs": 10, **kw}
    with pytest.raises(LosslandError, match=match):
        escape_stats(Saddle(saddle=[0, 0]), **args)
    with pytest.raises(LosslandError, match="no saddle"):
        escape_stats(Saddle(), [0.1], [0.1])
