"""``lossland paper <study> --scale full --rehearse``: the study's full-scale recipes end to end on a CPU, a few
seconds of work per experiment, before any GPU-hour is spent (docs/scale.md, "A rehearsal").

Every recipe runs at ``SCALE=full`` on the real data directory (or a synthetic one of the real sizes:
:mod:`lossland.data.synthetic_files`) through the real code path — the experiment configs, the data readers at
full size, the models at full width, the post-processing (collect, report, figures, paths, tables) and the
``paper`` comparison — with these overrides, all on the command line and in each job's ``overrides.yaml``:

- ``hydra.sweeper.params=null``: each experiment runs one job, its config's single-run values, instead of its
  grid (a recipe's own lists — the fine-tunes' three pre-trains, the interpolation's five runs — stay);
- training: ``trainer.max_steps=1`` at batch 16 (a CPU step of ConvNet-SI width 1 at the papers' 128 takes
  about 4 s), CPU, phase metrics on one mini-batch and 32 test images, no curvature, no scheduled checkpoints,
  and ``data.eval_limit=128``: every full-pass evaluation (the final one, the convergence check) reads the first
  128 images of each split (a full pass of ConvNet-SI width 1 over 60,000 images takes about 10 minutes on one
  CPU core). The data sets, splits and models keep their full sizes;
- paths (connect.py): 3 points on 128 training and 128 test images, no GM; nas.py: the full-size supernet for
  one search epoch of 16 + 16 images in batches of 8 (DARTS' unrolled step at batch 64 needs about 10 GB), one
  noise draw; lab.py (Keskar): one L-BFGS-B iteration on 256 images, 3 interpolation points.

The numbers it produces mean nothing; what it checks is that everything runs and is read back.
"""

from __future__ import annotations

TRAIN = ["hydra.sweeper.params=null", "trainer=cpu", "trainer.max_steps=1", "data.batch_size=16",
         "metrics.eval_batches=1", "metrics.test_examples=32", "metrics.curvature.enabled=false",
         "+data.eval_limit=128", "checkpoint.every_n_steps=null", "logger=csv"]
CONNECT = ["hydra.sweeper.params=null", "device=cpu", "num_points=3", "train_examples=128", "test_examples=128",
           "bn_batches=1", "batch_size=128", "gm=false"]
NAS = ["hydra.sweeper.params=null", "device=cpu", "data.train_size=16", "data.val_size=16", "data.test_size=16",
       "data.batch_size=8", "search.batch_size=8", "discrete.batch_size=8",
       "search.epochs=1", "search.log_every=1", "discrete.epochs=1", "robustness.draws=1",
       "robustness.weights_sigmas=[0.0,0.1]", "robustness.inputs_sigmas=[0.0,1.0]", "logger=csv"]
KESKAR = ["device=cpu", "maxiter=1", "sharpness_examples=256", "alphas=[-1,2,3]", "progress=false"]


def arguments(recipe: str) -> tuple[list[str], dict[str, str]]:
    """The extra command-line arguments and environment of ``sweeps/<recipe>.sh`` in a rehearsal."""
    if recipe == "nas":
        return list(NAS), {}
    if recipe in ("connect_width", "connect_prior"):  # a pair: seeds 0 and 10 (width: the config's single run)
        env = {"EXTRA_TRAIN": " ".join([*TRAIN, "seed=0,10"]), "EXTRA_CONNECT": " ".join(CONNECT)}
        if recipe == "connect_prior":  # one strength besides 0 checks the strength's override
            env.update(WD_COEFS="1e-3", DROPOUT_RATES="")
        return [], env
    if recipe == "keskar_sb_lb":  # the analysis needs both batch sizes
        return [], {"EXTRA_TRAIN": " ".join([*TRAIN, "data.batch_size=256,6000"]), "EXTRA_KESKAR": " ".join(KESKAR)}
    return list(TRAIN), {"EXTRA_CONNECT": " ".join(CONNECT)}
