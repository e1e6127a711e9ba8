"""``python tests/kill_after.py STEP SCRIPT [ARGS ...]``: run a lossland script (``train.py``, ``nas.py``) and
SIGKILL it right after it writes the checkpoint of step STEP: a kill at an exact point, for the tests of
docs/reliability.md (tests/test_failure_cases.py)."""

import os
import runpy
import signal
import sys

import lossland.loop as loop

step, script = int(sys.argv[1]), sys.argv[2]
save = loop.atomic_torch_save


def save_then_die(obj, path):
    written = save(obj, path)
    if isinstance(obj, dict) and obj.get("global_step") == step:
        os.kill(os.getpid(), signal.SIGKILL)
    return written


loop.atomic_torch_save = save_then_die
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
