# Shared by the sweep recipes. SCALE=embedded (default; mnist5k on the CPU), SCALE=full (CIFAR-10 on a GPU,
# DATA_ROOT=<dir with cifar-10-batches-py>) or SCALE=tiny (seconds: 320 digits, i.e. 2 batches of 16 even at
# data.fraction=0.1; a 1/16-width net; 8 steps — what tests/test_recipes.py runs in CI; not a result). OUT=<sweep dir> chooses where results go.
# FULL holds the scale's overrides; recipes put it after their own, so it wins. STEPS defaults per scale.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
LOSSLAND=${LOSSLAND:-$( [ -x .venv/bin/lossland ] && echo .venv/bin/lossland || echo lossland )}
SCALE=${SCALE:-embedded}
STAMP=$(date +%Y-%m-%d/%H-%M-%S)
case "$SCALE" in
  full)
    : "${DATA_ROOT:?SCALE=full needs DATA_ROOT=<directory holding the CIFAR-10 python batches>}"
    # CIFAR-10: 50,000 train / 10,000 test at batch 128 = 391 steps per epoch
    FULL=(data=cifar10 "data.root=$DATA_ROOT" data.train_size=null data.test_size=null model.width=1 trainer=gpu
          data.batch_size=128) ;;
  tiny)
    FULL=(data.train_size=320 data.test_size=64 data.batch_size=16 model.width=0.0625 metrics.every_n_steps=2
          metrics.eval_batches=2 metrics.test_examples=64 logger=csv)
    STEPS=${STEPS:-8} ;;
  embedded) FULL=() ;;
  *) echo "SCALE must be embedded, full or tiny, not $SCALE" >&2; exit 2 ;;
esac
