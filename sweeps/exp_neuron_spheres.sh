#!/usr/bin/env bash
# Study E benchmark: the spheres R2 = 1.01 quality and speed tables at the seed's sizes (MLP 100-50-25-1, sigmoid)
# from one command (docs/exp_neuron.md reports its time on 2 CPU cores).
#   sweeps/exp_neuron_spheres.sh        # OUT=<dir>; tables in <dir>/quality/exp_neuron/, <dir>/speed/exp_neuron/
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-multirun/exp_neuron_spheres/$(date +%Y-%m-%d/%H-%M-%S)}
OUT=$OUT/quality SETS="spheres:1.01:10000,15000,20000" bash sweeps/exp_neuron_quality.sh "$@"
OUT=$OUT/speed SETS="spheres:1.01:1000,5000,10000" bash sweeps/exp_neuron_speed.sh "$@"
