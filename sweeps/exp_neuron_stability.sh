#!/usr/bin/env bash
# Study E, stability: train BASES seeds with and without the neuron for EPOCHS epochs; continue each (init_from)
# for MORE epochs after adding N(0, sigma^2) noise, sigma = s * mean|weights of the neuron| for each s of SCALES
# (augment.perturb.scale; default the seed's 1/10 and 10), to the exponential neuron or to an ordinary neuron (unit 0
# of the first layer), NOISE noise draws each; the fraction of continued runs that diverge (non-finite loss, or
# above MAX_LOSS if set), and when: at step 1 (the noised weights overflow before any update) or later (a blow-up
# in training).
# Two protocols, one table (its `protocol` column): controlled (above: SET, normalized inputs, w ~ N(0, 0.01^2),
# a constant LR, a fresh Adam after the noise) and at the seed's conditions (SEED_SET, default digits 1 vs 7:
# raw inputs (data.normalize=none; digits' pixel values 0-16), w and b as nn.Linear(d, 1) draws them
# (augment.model.w_init=linear), an lr decaying log-linearly from SEED_LR to SEED_LR_END over the SEED_EPOCHS +
# SEED_MORE epochs, and the continued runs keep the base runs' Adam state and schedule (init_state=continue)).
# SEED_SET=none leaves the second protocol out.
#   sweeps/exp_neuron_stability.sh
#   SCALE=full DATA_ROOT=... sweeps/exp_neuron_stability.sh   # conf/experiment/paper/exp_neuron_stability_*.yaml
source "$(dirname "$0")/_exp_neuron.sh"
OUT=${OUT:-multirun/exp_neuron_stability/$STAMP}
from() { local d=$1; set +f; ls -d "$d"/[0-9]* | sort -V | paste -sd, -; set -f; }
if [ "$SCALE" = full ]; then
  full_scale_refuses SET MORE BASES NOISE SCALES MAX_LOSS SEED_SET SEED_EPOCHS SEED_MORE SEED_LR SEED_LR_END
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
if [ "${SEED_SET:-digits::200}" != none ]; then  # the protocol at the seed's conditions
  SEED_SET=${SEED_SET:-digits::200}
  SEED_EPOCHS=${SEED_EPOCHS:-70}
  SEED_MORE=${SEED_MORE:-30}
  SEED_LR=${SEED_LR:-1e-2}
  SEED_LR_END=${SEED_LR_END:-1e-4}
  IFS=: read -r _ _ size <<< "$SEED_SET"
  SPE=$(( ${size%%,*} / 64 )); [ "$SPE" -ge 1 ] || SPE=1  # steps per epoch (batch 64, the last partial batch dropped)
  RAW=(data.normalize=none "lr=$SEED_LR" schedule=linear "schedule.start=$SEED_LR" "schedule.end=$SEED_LR_END"
       schedule.transition_start=0 "schedule.transition_length=$(( SPE * (SEED_EPOCHS + SEED_MORE) ))" schedule.log=true)
  run_set "$OUT/seed_base_exp_neuron" "$SEED_SET" augment=exp_neuron augment.model.w_init=linear "${RAW[@]}" \
    "seed=$BASES" "trainer.max_epochs=$SEED_EPOCHS" "$@"
  run_set "$OUT/seed_base_none" "$SEED_SET" augment=none "${RAW[@]}" "seed=$BASES" "trainer.max_epochs=$SEED_EPOCHS" "$@"
  EN=$(from "$OUT/seed_base_exp_neuron"); PLAIN=$(from "$OUT/seed_base_none")
  CONT=("seed=$NOISE" "augment.perturb.scale=$SCALES" "trainer.max_epochs=$SEED_MORE" "max_loss=$MAX_LOSS" init_state=continue)
  LAUNCHER=basic run_set "$OUT/seed_perturbed_exp_neuron" "$SEED_SET" augment=exp_neuron augment.model.w_init=linear \
    "${RAW[@]}" "init_from=$EN" augment.perturb.target=exp_neuron,hidden_neuron "${CONT[@]}" "$@"
  LAUNCHER=basic run_set "$OUT/seed_perturbed_none" "$SEED_SET" augment=none "${RAW[@]}" "init_from=$PLAIN" \
    augment.perturb.target=hidden_neuron "${CONT[@]}" "$@"
fi
$LOSSLAND exp-neuron "$OUT" --protocol stability
