#!/usr/bin/env bash
# Study E, Table 1 (quality): final training loss summed \ misclassified training examples, without vs with the
# exponential neuron, per data set and size; one setting (LR, LAM) trained for EPOCHS epochs.
#   sweeps/exp_neuron_quality.sh                         # embedded: spheres, Gaussians, mnist5k, digits
#   SETS="spheres:1.01:10000,15000,20000" sweeps/exp_neuron_quality.sh
#   SCALE=full DATA_ROOT=... sweeps/exp_neuron_quality.sh   # conf/experiment/paper/exp_neuron_quality_<set>.yaml
source "$(dirname "$0")/_exp_neuron.sh"
OUT=${OUT:-multirun/exp_neuron_quality/$STAMP}
if [ "$SCALE" = full ]; then
  for s in $PAPER_SETS; do run_paper "$OUT/$s" "exp_neuron_quality_$s" "$@"; done
  $LOSSLAND exp-neuron "$OUT" --protocol quality
  exit 0
fi
EPOCHS=${EPOCHS:-100}
LR=${LR:-3e-3}
LAM=${LAM:-1e-3}
DEFAULT="spheres:1.01:10000,15000,20000 gaussians:0.1:15000,20000 mnist5k::600 digits::200"
for s in ${SETS:-$DEFAULT}; do
  run_set "$OUT/$(tag "$s")" "$s" augment=none,exp_neuron "augment.lam=$LAM" "lr=$LR" "trainer.max_epochs=$EPOCHS" "$@"
done
$LOSSLAND exp-neuron "$OUT" --protocol quality
