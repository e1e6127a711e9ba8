# Shared by the study E recipes (sweeps/exp_neuron_*.sh; docs/exp_neuron.md).
# A data set is named KIND:PARAM:SIZES — spheres:1.01:10000,15000 (R1 = 1 vs R2 = 1.01), gaussians:0.1:15000
# (means 0 vs 0.1, std 1), mnist5k::600 and digits::200 (embedded stand-ins, 1 vs 7; mnist5k's CNN has channels
# 16-32-64, mnist5k-net6::600 the seed's net 6 at its own 64-128-256), mnist::11000 and
# cifar10::2000 (the real data sets, from DATA_ROOT=<folder with the MNIST IDX files and cifar-10-batches-py/>).
# SETS="..." overrides a recipe's list; extra arguments go to every train.py call (e.g. data.dim=10). LOGGER=wandb
# logs to W&B (offline). LAUNCHER (default vectorized: the jobs of one call that differ only in rates, lambda or seed
# train as one stack, docs/scale.md; basic: one after another) is Hydra's launcher of every call, unless an
# argument names one (e.g. hydra/launcher=submitit_slurm).
# SCALE=full runs the protocol's experiments conf/experiment/paper/exp_neuron_<protocol>_<set>[_none|_exp].yaml for
# the sets spheres, gaussians, mnist, cifar10 (every value from the configs; DATA_ROOT as above; the knobs SETS,
# EPOCHS, LR(S), LAM(S), LOGGER are refused there — pass overrides as arguments, e.g. logger=wandb).
source "$(dirname "$0")/_common.sh"
set -f  # the overrides hold [ ] (no globbing)
full_scale_refuses SETS EPOCHS LR LRS LAM LAMS LOGGER LAUNCHER
PAPER_SETS="spheres gaussians mnist cifar10"
LOGGER=${LOGGER:-csv}
LAUNCHER=${LAUNCHER:-vectorized}
MLP4=(model=mlp "model.hidden=[50,25]" model.activation=sigmoid)      # the seed's net 4: 100-50-25-1, sigmoid
COMMON=(loss=hinge3 optimizer=adam data.normalize=standard data.batch_size=64 metrics.enabled=false
        metrics.convergence.enabled=true trainer.max_steps=-1 trainer.enable_progress_bar=false "logger=$LOGGER")

set_args() {  # set_args KIND:PARAM:SIZES -> ARGS (data and model overrides)
  local kind param sizes
  IFS=: read -r kind param sizes <<< "$1"
  case $kind in
    spheres) ARGS=(data=spheres "data.radii=[1.0,$param]" "data.train_size=$sizes" data.val_size=2000
                   data.test_size=2000 "${MLP4[@]}");;
    gaussians) ARGS=(data=gaussians "data.means=[0.0,$param]" data.std=1.0 "data.train_size=$sizes"
                     data.val_size=2000 data.test_size=2000 "${MLP4[@]}");;
    mnist5k) ARGS=(data=mnist5k "data.classes=[1,7]" "data.train_size=${sizes:-600}" data.val_size=200
                   data.test_size=200 model=cnn_prelu "model.channels=[16,32,64]");;
    mnist5k-net6) ARGS=(data=mnist5k "data.classes=[1,7]" "data.train_size=${sizes:-600}" data.val_size=200
                        data.test_size=200 model=cnn_prelu "model.channels=[64,128,256]");;  # net 6 at its channels
    digits) ARGS=(data=digits "data.classes=[1,7]" "data.train_size=${sizes:-200}" data.val_size=80
                  data.test_size=80 model=mlp "model.hidden=[32,16]" model.activation=sigmoid);;
    mnist) : "${DATA_ROOT:?mnist needs DATA_ROOT=<directory with the MNIST IDX files>}"
           ARGS=(data=mnist "data.root=$DATA_ROOT" "data.classes=[1,7]" "data.train_size=${sizes:-11000}"
                 data.val_size=2000 data.test_size=2000 model=cnn_prelu);;
    cifar10) : "${DATA_ROOT:?cifar10 needs DATA_ROOT=<directory with cifar-10-batches-py>}"
             ARGS=(data=cifar10 "data.root=$DATA_ROOT" "data.classes=[0,1]" "data.train_size=${sizes:-2000}"
                   data.val_size=2000 data.test_size=2000 model=mlp "model.hidden=[1536,768]" model.activation=sigmoid);;
    *) echo "unknown data set $1 (spheres, gaussians, mnist5k, mnist5k-net6, digits, mnist, cifar10)" >&2; exit 2;;
  esac
}

tag() { echo "$1" | tr ':,' '__'; }

run_set() {  # run_set SWEEP_DIR KIND:PARAM:SIZES OVERRIDES...: one train.py multirun
  local dir=$1 set=$2
  shift 2
  set_args "$set"
  local launcher=("hydra/launcher=$LAUNCHER") a
  for a in "$@"; do case $a in hydra/launcher=*) launcher=();; esac; done  # the caller's launcher wins
  $PY train.py -m "${COMMON[@]}" "${ARGS[@]}" ${launcher[@]+"${launcher[@]}"} "hydra.sweep.dir=$dir" "$@"
}

run_paper() {  # run_paper SWEEP_DIR CONFIG OVERRIDES...: one full-scale experiment, conf/experiment/paper/CONFIG.yaml
  local dir=$1 config=$2 root=()
  shift 2
  case $config in *_mnist*|*_cifar10*) root=("data.root=$DATA_ROOT");; esac
  $PY train.py -m "experiment=paper/$config" ${root[@]+"${root[@]}"} trainer.enable_progress_bar=false \
    "hydra.sweep.dir=$dir" "$@"
}
