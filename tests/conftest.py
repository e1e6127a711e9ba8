import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


# Modules with tests of half a minute or more on 2 cores (--durations), run after the recipes and before the rest.
# `make test` hands each pytest-xdist worker its next test when it finishes one (--maxschedchunk=1): started first,
# the long tests spread over both workers; started last, they would leave one worker idle while the other ends them.
LONG_MODULES = ("test_exp_neuron_protocols.py", "test_launchers.py", "test_reliability.py", "test_wandb.py",
                "test_failure_cases.py", "test_report.py")


def pytest_collection_modifyitems(config, items):
    """The recipes (``-m recipes``), then the tests of :data:`LONG_MODULES`, then the rest, each in collection
    order."""
    def rank(item):
        if item.get_closest_marker("recipes"):
            return 0
        return 1 if item.path.name in LONG_MODULES else 2

    items.sort(key=rank)


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


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory, request):
    """A single-node SLURM cluster for the session (tests/slurm_cluster.py): installed if missing, brought up in
    a temporary directory, its daemons stopped at the end whatever the tests did. Where it cannot be brought up
    the tests are skipped with the reason, except under ``CI`` or ``LOSSLAND_REQUIRE_SLURM=1`` (``make
    test-slurm``), where that fails them."""
    from tests.slurm_cluster import Cluster, ClusterError

    # The node claims 16 CPUs, 64 GB and a (fake) GPU whatever the machine has, so that a job array is throttled
    # by its array_parallelism rather than by the cores, and docs/scale.md's per-job requests (8 CPUs, 16 GB, a
    # GPU, partition gpu) are scheduled here as on a real cluster.
    cluster, error = Cluster(tmp_path_factory.mktemp("slurm"), cpus=16, memory_mb=65536, gpus=1), None
    try:
        cluster.up()
    except ClusterError as e:
        error = str(e)
    if error and (os.environ.get("CI") or os.environ.get("LOSSLAND_REQUIRE_SLURM")):
        pytest.fail(f"the SLURM cluster could not be brought up: {error}", pytrace=False)
    if error:
        pytest.skip(f"no SLURM cluster here: {error}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown without -s: how long the packages and the daemons took
        print(f"\nslurm: installed in {cluster.install_s:.1f} s, cluster up in {cluster.start_s:.1f} s ({cluster.dir})")
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def slurm(slurm_cluster):
    """The session's SLURM cluster, its queue emptied after the test (a failed test leaves no job behind)."""
    yield slurm_cluster
    slurm_cluster.cancel_all()


@pytest.fixture(autouse=True)
def _no_hydra_config_left_behind():
    """A test that runs a Hydra app in this process (``--cfg job``, a multirun) leaves Hydra's global config set;
    the next test's jobs would take it for their own app's (output directories, tracker groups)."""
    yield
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()
