#!/usr/bin/env bash
# Study E, Table 3 (generalization): every (lr, lambda) of the grid trained for EPOCHS epochs; among the settings
# that reached zero training errors, the one with the fewest misclassified test examples; its validation loss
# summed \ misclassified validation examples.
#   sweeps/exp_neuron_generalization.sh
#   SCALE=full DATA_ROOT=... sweeps/exp_neuron_generalization.sh   # conf/experiment/paper/exp_neuron_generalization_*
source "$(dirname "$0")/_exp_neuron.sh"
OUT=${OUT:-multirun/exp_neuron_generalization/$STAMP}
if [ "$SCALE" = full ]; then  # conf/experiment/paper/exp_neuron_generalization_<set>_{none,exp}.yaml
  for s in $PAPER_SETS; do
    for aug in none exp; do run_paper "$OUT/${s}_$aug" "exp_neuron_generalization_${s}_$aug" "$@"; done
  done
  $LOSSLAND exp-neuron "$OUT" --protocol generalization
  exit 0
fi
EPOCHS=${EPOCHS:-60}
LRS=${LRS:-1e-3,3e-3,1e-2}
LAMS=${LAMS:-1e-3,1e-2}
DEFAULT="spheres:1.5:5000 spheres:5:5000 gaussians:0.5:5000 gaussians:1:5000 mnist5k::600 digits::200"
for s in ${SETS:-$DEFAULT}; do
  run_set "$OUT/$(tag "$s")_none" "$s" augment=none "lr=$LRS" "trainer.max_epochs=$EPOCHS" "$@"
  run_set "$OUT/$(tag "$s")_exp" "$s" augment=exp_neuron "lr=$LRS" "augment.lam=$LAMS" "trainer.max_epochs=$EPOCHS" "$@"
done
$LOSSLAND exp-neuron "$OUT" --protocol generalization
