#!/usr/bin/env bash
# Study S, off the sphere (seed 003, appendix 4, Figs 26-29): VGG16-BN with plain SGD (no momentum), weight decay
# 0 and 1e-4, over a learning-rate grid. The runs record the lr they used (no elr: the seed calls this lr "elr"
# for consistency); the report plots final metrics against lr, one line per wd (regularizer.coef), and one
# phase-diagram panel per wd. Embedded: width 0.25 on 2,000 mnist5k digits (padded to 32x32), CPU, STEPS, LRS, WDS,
# SEEDS; full: experiment=paper/vgg_offsphere (CIFAR-10, width 1, 8 lrs x 2 wds, 1000 epochs, GPU).
#   sweeps/vgg_offsphere.sh                          # then open <OUT>/report/index.html
#   LRS=0.003,0.01,0.03,0.1,0.3 SEEDS=0,1 sweeps/vgg_offsphere.sh
#   SCALE=full DATA_ROOT=~/data/cifar10 sweeps/vgg_offsphere.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/vgg_offsphere/$STAMP}
if [ "$SCALE" = full ]; then
  full_scale_refuses STEPS LRS WDS SEEDS WIDTH
  $PY train.py -m experiment=paper/vgg_offsphere "data.root=$DATA_ROOT" trainer.enable_progress_bar=false \
    "hydra.sweep.dir=$OUT" "$@"
else
  STEPS=${STEPS:-600}
  LRS=${LRS:-0.01,0.1}
  WDS=${WDS:-0,1e-4}
  SEEDS=${SEEDS:-0}
  WIDTH=${WIDTH:-0.25}
  $PY train.py -m model=vgg16_bn "model.width=$WIDTH" optimizer=sgd "lr=$LRS" regularizer=weight_decay \
    "regularizer.coef=$WDS" "seed=$SEEDS" data.train_size=2000 trainer.max_steps=$STEPS trainer.max_epochs=1000 \
    ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
fi
$LOSSLAND collect "$OUT"
$LOSSLAND report "$OUT"
