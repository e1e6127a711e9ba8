"""``lossland paper <study>``: a seed document's tables beside our values, the figures, and per claimed trend
whether it reproduces at this scale (docs/paper.md).

- ``seeds/<study>.yaml`` — the seed's tables and the numbers its text states, as data with units, setting and
  source; its claimed trends (package data, read by :mod:`lossland.paper.data`);
- ``studies/<study>.py`` — one adapter per study: its recipes, one function per table (our values from the
  records), one function per trend (the verdict);
- :mod:`lossland.paper.compare` — the side-by-side rows and their rendering; :mod:`lossland.paper.command` —
  running the recipes and writing everything.
"""
