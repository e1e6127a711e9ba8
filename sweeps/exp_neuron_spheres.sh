#!/usr/bin/env bash
# Study E benchmark: the spheres R2 = 1.01 quality and speed tables at the seed's sizes (MLP 100-50-25-1, sigmoid)
# from one command (docs/exp_neuron.md reports its time on 2 CPU cores).
#   sweeps/exp_neuron_spheres.sh        # OUT=<dir>; tables in <dir>/quality/exp_neuron/, <dir>/speed/exp_neuron/
#   SCALE=tiny sweeps/exp_neuron_spheres.sh   # seconds (CI): 64 points in 10 dimensions, an 8-unit MLP, 2 epochs
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-multirun/exp_neuron_spheres/$(date +%Y-%m-%d/%H-%M-%S)}
QUALITY=spheres:1.01:10000,15000,20000
SPEED=spheres:1.01:1000,5000,10000
TINY=()
if [ "${SCALE:-embedded}" = tiny ]; then
  QUALITY=spheres:1.01:64 SPEED=spheres:1.01:64
  export EPOCHS=${EPOCHS:-2}
  TINY=(data.dim=10 data.val_size=32 data.test_size=32 "model.hidden=[8]")
fi
OUT=$OUT/quality SETS="$QUALITY" bash sweeps/exp_neuron_quality.sh ${TINY[@]+"${TINY[@]}"} "$@"
OUT=$OUT/speed SETS="$SPEED" bash sweeps/exp_neuron_speed.sh ${TINY[@]+"${TINY[@]}"} "$@"
