#!/usr/bin/env bash
# Study E, stability: train BASES seeds with and without the neuron for EPOCHS epochs; continue each (init_from)
# for MORE epochs after adding N(0, sigma^2) noise, sigma = s * mean|weights of the neuron| for each s of SCALES
# (augment.perturb.scale; default the seed's 1/10 and 10), to the exponential neuron or to an ordinary neuron (unit 0
# of the first layer), NOISE noise draws each; the fraction of continued runs that diverge (non-finite loss, or
# above MAX_LOSS if set), and when.
#   sweeps/exp_neuron_stability.sh
#   SCALE=full DATA_ROOT=... sweeps/exp_neuron_stability.sh   # conf/experiment/paper/exp_neuron_stability_*.yaml
source "$(dirname "$0")/_exp_neuron.sh"
OUT=${OUT:-multirun/exp_neuron_stability/$STAMP}
from() { local d=$1; set +f; ls -d "$d"/[0-9]* | sort -V | paste -sd, -; set -f; }
if [ "$SCALE" = full ]; then
  full_scale_refuses SET MORE BASES NOISE SCALES MAX_LOSS
  for aug in none exp; do run_paper "$OUT/base_${aug/exp/exp_neuron}" "exp_neuron_stability_base_$aug" "$@"; done
  run_paper "$OUT/perturbed_exp_neuron" exp_neuron_stability_perturbed_exp "init_from=$(from "$OUT/base_exp_neuron")" "$@"
  run_paper "$OUT/perturbed_none" exp_neuron_stability_perturbed_none "init_from=$(from "$OUT/base_none")" "$@"
  $LOSSLAND exp-neuron "$OUT" --protocol stability
  exit 0
fi
SET=${SET:-spheres:5:1000}
EPOCHS=${EPOCHS:-50}
MORE=${MORE:-20}
LR=${LR:-3e-3}
BASES=${BASES:-0,1,2}
NOISE=${NOISE:-10,11,12}
SCALES=${SCALES:-0.1,10}  # σ / mean|w|: the seed's 1/10, and 100× it (where exp overflows at once)
MAX_LOSS=${MAX_LOSS:-null}
for aug in none exp_neuron; do
  run_set "$OUT/base_$aug" "$SET" "augment=$aug" "lr=$LR" "seed=$BASES" "trainer.max_epochs=$EPOCHS" "$@"
done
EN=$(from "$OUT/base_exp_neuron"); PLAIN=$(from "$OUT/base_none")
CONT=("lr=$LR" "seed=$NOISE" "augment.perturb.scale=$SCALES" "trainer.max_epochs=$MORE" "max_loss=$MAX_LOSS")
# the continued runs differ in the perturbed neuron, which does not stack: one after another
LAUNCHER=basic run_set "$OUT/perturbed_exp_neuron" "$SET" augment=exp_neuron "init_from=$EN" \
  augment.perturb.target=exp_neuron,hidden_neuron "${CONT[@]}" "$@"
LAUNCHER=basic run_set "$OUT/perturbed_none" "$SET" augment=none "init_from=$PLAIN" augment.perturb.target=hidden_neuron \
  "${CONT[@]}" "$@"
$LOSSLAND exp-neuron "$OUT" --protocol stability
