#!/usr/bin/env bash
# Loss-weight sweep: continue a trained GLAE model (INIT_FROM, by default the shipped one) for 40 steps under
# three (repulsion, reconstruction) weightings and record STS-B dev Spearman and held-out decode token F1 of each (python -m benchmarks.pareto plots them).
set -euo pipefail
cd "$(dirname "$0")/.."
INIT_FROM="${INIT_FROM:-glae_st/models/glae-smollm2-135m}"
for weights in "1.0 1.0" "0.1 1.0" "1.0 0.1"; do
  set -- $weights
  name="w1-$1_w2-$2"
  python -m training.train --config training/configs/smollm2-default.yaml --output-dir "runs/sweep/$name" \
    --set init_from="$INIT_FROM" --set loss.repulsion_weight="$1" --set loss.reconstruction_weight="$2" \
    --set training.max_steps=40 --set training.eval_steps=40 --set training.save_steps=40 --set training.learning_rate=1.0e-4 \
    --set training.warmup_steps=0 > "training/logs/sweep_$name.log" 2>&1
  cp "runs/sweep/$name/final/training_log.json" "training/logs/sweep_$name.training_log.json"
done
