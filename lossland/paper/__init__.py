"""The framework of ``lossland paper <study>``: a seed document's tables beside our values, the figures, and per
claimed trend whether it reproduces at this scale (docs/paper.md).

- :mod:`lossland.paper.data` — the one reader of a study's ``seed.yaml`` (the seed's tables and stated numbers as
  data with units, setting and source, and its claimed trends);
- :mod:`lossland.paper.adapters` — what a study's ``paper`` module defines (recipes, tables, trends);
- :mod:`lossland.paper.compare` — the side-by-side rows and their rendering;
- :mod:`lossland.paper.settings` — the papers' full-scale settings (``lossland/studies/<study>/settings.yaml``) and
  the check of every paper config (``conf/experiment/paper/``) against them;
- :mod:`lossland.paper.plan` — every full-scale job and its estimated cost (``step_times.yaml``), nothing run;
- :mod:`lossland.paper.rehearsal` — the overrides of the CPU rehearsal of the full-scale recipes.

Each study keeps its own seed data and adapter in ``lossland/studies/<study>/`` (``seed.yaml``, ``paper.py``);
the command that runs them is :mod:`lossland.commands.paper`.
"""
