"""The studies: one package per seed document, each holding its analysis, figures, seed data (``seed.yaml``)
and ``paper`` adapter. A study stands on the core (training, records, metrics) and on :mod:`lossland.analysis`
and :mod:`lossland.paper`; studies never import each other (the import-linter contract in pyproject.toml).

- :mod:`lossland.studies.sphere` — S: training scale-invariant nets on the sphere, three regimes (seed 003);
- :mod:`lossland.studies.connect` — C: mode connectivity and width (seed 001);
- :mod:`lossland.studies.exp_neuron` — E: one exponential neuron (seed 000);
- :mod:`lossland.studies.nas` — D: architecture search with a Dirichlet prior (seed 002);
- :mod:`lossland.studies.optim` — O: optimizers on non-convex landscapes, small vs large batch (seed 004).
"""
