#!/usr/bin/env bash
# Study E, Table 2 (speed): for every lr in LRS (and lambda in LAMS, with the neuron) the epoch at which the
# training split is first classified with zero errors (runs stop there; EPOCHS is the budget); best per model.
#   sweeps/exp_neuron_speed.sh
#   SETS="spheres:1.01:1000,5000,10000" LRS=1e-3,3e-3,1e-2 LAMS=1e-3,1e-2 sweeps/exp_neuron_speed.sh
#   SCALE=full DATA_ROOT=... sweeps/exp_neuron_speed.sh   # conf/experiment/paper/exp_neuron_speed_<set>_<aug>.yaml
source "$(dirname "$0")/_exp_neuron.sh"
OUT=${OUT:-multirun/exp_neuron_speed/$STAMP}
if [ "$SCALE" = full ]; then  # conf/experiment/paper/exp_neuron_speed_<set>_{none,exp}.yaml
  for s in $PAPER_SETS; do
    for aug in none exp; do run_paper "$OUT/${s}_$aug" "exp_neuron_speed_${s}_$aug" "$@"; done
  done
  $LOSSLAND exp-neuron "$OUT" --protocol speed
  exit 0
fi
EPOCHS=${EPOCHS:-150}
LRS=${LRS:-1e-3,3e-3,1e-2}
LAMS=${LAMS:-1e-3,1e-2}
DEFAULT="spheres:1.01:1000,5000,10000 gaussians:0.1:10000,15000 mnist5k::600 mnist5k-net6::600 digits::200"
for s in ${SETS:-$DEFAULT}; do
  STOP=(metrics.convergence.stop_at_zero_error=true "trainer.max_epochs=$EPOCHS")
  run_set "$OUT/$(tag "$s")_none" "$s" augment=none "lr=$LRS" "${STOP[@]}" "$@"
  run_set "$OUT/$(tag "$s")_exp" "$s" augment=exp_neuron "lr=$LRS" "augment.lam=$LAMS" "${STOP[@]}" "$@"
done
$LOSSLAND exp-neuron "$OUT" --protocol speed
