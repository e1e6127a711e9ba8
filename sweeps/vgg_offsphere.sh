#!/usr/bin/env bash
# Study S, off the sphere: VGG16-BN with plain SGD and weight decay 0 and 1e-4 over a learning-rate grid.
# Embedded: width 0.25 on mnist5k (padded to 32x32), CPU; full: CIFAR-10, width 1, GPU.
#   sweeps/vgg_offsphere.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/vgg_offsphere/$STAMP}
STEPS=${STEPS:-600}
LRS=${LRS:-0.01,0.1}
WIDTH=$([ "$SCALE" = full ] && echo 1 || echo 0.25)
$PY train.py -m model=vgg16_bn model.width=$WIDTH optimizer=sgd "lr=$LRS" regularizer=weight_decay \
  regularizer.coef=0,1e-4 data.train_size=2000 trainer.max_steps=$STEPS trainer.max_epochs=1000 \
  ${FULL[@]+"${FULL[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
$LOSSLAND collect "$OUT"
