"""A whole grid trained as one vectorized model (``python train.py -m ... hydra/launcher=vectorized``;
docs/scale.md).

The jobs of a multirun that differ only in rates (``elr`` / ``lr``), the regularization coefficient
(``regularizer.coef``) or ``seed`` are trained in one process as one stacked model: one
forward pass for all members (batched matrix products for MLPs, else ``torch.func.vmap`` of
``functional_call``) and one backward pass, then the SGD update (and, for sphere SGD, each member's retraction)
on the stacked tensors. Each member still is an ordinary job: its own
directory, ``.hydra/config.yaml``, ``summary.json``, ``metrics.csv``, checkpoints and phase metrics, built by
:func:`lossland.train.prepare`; a member whose loss goes bad stops alone and is recorded ``diverged`` at that
step, exactly as its sequential run would be.

- :mod:`lossland.sweep.vectorized.stack`: which grids stack (one-line refusals naming the differing key) and the
  stacked step's arithmetic;
- :mod:`lossland.sweep.vectorized.step`: that step as the :class:`lossland.loop.Step` of the one training loop;
- :mod:`lossland.sweep.vectorized.run`: the launcher's batch as a grid, its members' jobs.
"""

from lossland.sweep.vectorized.run import launch_batch, run_grid

__all__ = ["launch_batch", "run_grid"]
