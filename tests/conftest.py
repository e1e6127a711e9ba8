import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config (as train.py would) with tiny sizes, writing into a fresh run dir."""
    from lossland.config import compose

    def _make(*overrides, out="run"):
        return compose([*overrides, f"out_dir={tmp_path / out}", "logger=csv",
                        "trainer.enable_progress_bar=false"])

    return _make


def run_cli(*args, cwd=ROOT, timeout=600):
    """Run a command-line entry point (``train.py`` or ``-m lossland.cli``) in a subprocess."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def float64():
    """Run a test in double precision (tests comparing against dense ground truth)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
