"""Measurements of a recorded run: the pure functions of :mod:`lossland.metrics` (curvature, loss-landscape
slices) applied to a run directory's checkpoints (``lossland curvature``, ``lossland slice``). They sit above
:mod:`lossland.runs`, which rebuilds the run's model; :mod:`lossland.metrics` itself reads no run."""
