# Shared by the sweep recipes. Three scales:
#   SCALE=embedded (default): mnist5k on the CPU, with each recipe's knobs (STEPS, ELRS, ...; see its header);
#   SCALE=full: the paper's scale — each experiment is its config conf/experiment/paper/<name>.yaml, which holds
#     every value (data, sizes, model, grid, length, evaluation; lossland/studies/<study>/settings.yaml gives the
#     sources). The recipe adds only data.root=$DATA_ROOT (a folder with cifar-10-batches-py/ and/or the MNIST
#     IDX files), where each job writes, and the arguments you pass (e.g. hydra/launcher=submitit_slurm); the
#     embedded knobs are refused. `lossland paper <study> --scale full --plan` lists every job and its cost first;
#   SCALE=tiny: seconds (320 digits, i.e. 2 batches of 16 even at data.fraction=0.1; a 1/16-width net; 8 steps) —
#     what tests/test_recipes.py runs in CI; not a result. TINY holds its overrides.
# OUT=<sweep dir> chooses where results go.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
LOSSLAND=${LOSSLAND:-$( [ -x .venv/bin/lossland ] && echo .venv/bin/lossland || echo lossland )}
SCALE=${SCALE:-embedded}
STAMP=$(date +%Y-%m-%d/%H-%M-%S)
TINY=()
case "$SCALE" in
  full) : "${DATA_ROOT:?SCALE=full needs DATA_ROOT=<folder with cifar-10-batches-py/ and/or the MNIST IDX files>}" ;;
  tiny)
    TINY=(data.train_size=320 data.test_size=64 data.batch_size=16 model.width=0.0625 metrics.every_n_steps=2
          metrics.eval_batches=2 metrics.test_examples=64 logger=csv)
    STEPS=${STEPS:-8} ;;
  embedded) ;;
  *) echo "SCALE must be embedded, full or tiny, not $SCALE" >&2; exit 2 ;;
esac

# full_scale_refuses VAR ...: at SCALE=full an embedded knob would override the paper's config behind its back
full_scale_refuses() {
  [ "$SCALE" = full ] || return 0
  local v
  for v in "$@"; do
    if [ -n "${!v:-}" ]; then
      echo "SCALE=full takes its values from conf/experiment/paper/ ($v=${!v} is an embedded knob); pass an override" \
           "as an argument instead (e.g. elr=1e-3,1e-2)" >&2
      exit 2
    fi
  done
}
