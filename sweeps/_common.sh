# Shared by the sweep recipes: SCALE=embedded (default; mnist5k on the CPU) or SCALE=full (CIFAR-10 on a GPU,
# DATA_ROOT=<dir with cifar-10-batches-py>). OUT=<sweep dir> chooses where results go.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
LOSSLAND=${LOSSLAND:-$( [ -x .venv/bin/lossland ] && echo .venv/bin/lossland || echo lossland )}
SCALE=${SCALE:-embedded}
STAMP=$(date +%Y-%m-%d/%H-%M-%S)
if [ "$SCALE" = full ]; then
  : "${DATA_ROOT:?SCALE=full needs DATA_ROOT=<directory holding the CIFAR-10 python batches>}"
  FULL=(data=cifar10 "data.root=$DATA_ROOT" data.train_size=null data.test_size=null model.width=1 trainer=gpu data.batch_size=128)
elif [ "$SCALE" = tiny ]; then  # PROVISIONAL (finetune branch): a seconds-long run of any sphere recipe, for tests
  FULL=(data.train_size=128 data.test_size=64 data.batch_size=32 model.width=0.0625 metrics.every_n_steps=2
        metrics.eval_batches=2 metrics.test_examples=64 logger=csv)
else
  FULL=()
fi
