"""Sweeps: how jobs are launched (thread policy and launcher plugins, :mod:`.launchers`; a grid as one stacked
model, :mod:`.vectorized`) and how a finished sweep is read (``lossland collect``, ``lossland report``)."""
