"""lossland's phase-boundary sweeper (``hydra/sweeper=phase_boundary``; Hydra finds plugins only in the
``hydra_plugins`` namespace): :class:`lossland.sweep.phase_sweeper.PhaseBoundary`, whose bad input (and any other
user error) ends the command with one line, exit 2, before a job runs."""

from lossland.errors import LosslandError
from lossland.sweep.phase_sweeper import PhaseBoundary


class PhaseBoundarySweeper(PhaseBoundary):
    """``conf/hydra/sweeper/phase_boundary.yaml``."""

    def sweep(self, arguments):
        from lossland.entry import fail

        try:
            return super().sweep(arguments)
        except LosslandError as e:
            fail(e)
