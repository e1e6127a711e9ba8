"""lossland's sweeper plugin (Hydra finds plugins only in the ``hydra_plugins`` namespace): Hydra's basic sweeper
with lossland's checks of every job before the first starts (:mod:`lossland.sweep.sweeper`)."""

from lossland.sweep.sweeper import Preflight


class LosslandSweeper(Preflight):
    """The default sweeper of ``lossland train -m`` (``conf/hydra/sweeper/lossland.yaml``)."""
