"""The optimizer lab (study O, docs/optim_lab.md): optimizers on 2-d landscapes, saddle-escape statistics of
noisy gradient descent, small- vs large-batch training (Keskar et al.), and vanishing gradients.

Modules: ``functions`` (2-d test functions and a safe expression parser), ``trajectories`` (run the training
loop's optimizers on a 2-parameter tensor), ``escape`` (vectorized noisy-GD escape times), ``keskar`` (SB/LB
analysis of finished runs: ``lossland keskar``), ``vanishing`` (per-layer gradient norms vs depth), ``plots``,
``app`` (the tasks of the ``lossland lab`` Hydra app)."""
