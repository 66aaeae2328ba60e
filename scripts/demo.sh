#!/usr/bin/env bash
# make demo: the whole pipeline on real MNIST with the project's CNN teacher
# (fixtures/teacher/mnist_cnn.onnx): extract its logits and penultimate layer
# once, train a distilled (KD) student and a hard-label student of the same
# architecture against the cache, export both to ONNX (verified in
# onnxruntime), evaluate everything and write the report. Expects `make setup
# build` to have run (the Makefile's demo target does that).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-out}
D=bin/distill
LAYERS=${DEMO_LAYERS:-128}
EPOCHS=${DEMO_EPOCHS:-10}
T0=$(date +%s)
step() { printf '\n== [%3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

rm -rf "$OUT/run"
mkdir -p "$OUT/data" "$OUT/run/eval"
step "1/7 MNIST as Parquet (60,000 train, 10,000 test images)"
for split in train test; do
  [ -f "$OUT/data/mnist-$split.parquet" ] || $D data mnist --split $split --out "$OUT/data/mnist-$split.parquet"
done

step "2/7 the teacher's tensors (the penultimate layer 'hidden' is cached too)"
$D tensors fixtures/teacher/mnist_cnn.onnx

step "3/7 extract: run the teacher once over train and test; cache logits, hidden state and inputs"
for split in train test; do
  rm -rf "$OUT/cache-$split"
  $D extract --teacher fixtures/teacher/mnist_cnn.onnx --data "$OUT/data/mnist-$split.parquet" \
    --out "$OUT/cache-$split" --scale 1/255 --hidden hidden --keep-input
done
$D inspect "$OUT/cache-test" --verify --rows 2

step "4/7 train two 784-${LAYERS//,/-}-10 students on the cache: distilled (alpha 0.9, T 4) and hard labels (alpha 0)"
$D train --cache "$OUT/cache-train" --val "$OUT/cache-test" --out "$OUT/run/kd.ckpt" \
  --layers "$LAYERS" --alpha 0.9 --temperature 4 --epochs "$EPOCHS" --lr 1e-3 --seed 1
$D train --cache "$OUT/cache-train" --val "$OUT/cache-test" --out "$OUT/run/hard.ckpt" \
  --layers "$LAYERS" --alpha 0 --epochs "$EPOCHS" --lr 1e-3 --seed 1

step "5/7 export both students to ONNX, verified against the Go students in onnxruntime"
$D export --student "$OUT/run/kd.ckpt" --out "$OUT/run/kd.onnx" --verify "$OUT/cache-test"
$D export --student "$OUT/run/kd.ckpt" --out "$OUT/run/kd-int8.onnx" --quantize int8 --verify "$OUT/cache-test"
$D export --student "$OUT/run/hard.ckpt" --out "$OUT/run/hard.onnx" --verify "$OUT/cache-test"

step "6/7 evaluate teacher and students on the 10,000 test images in onnxruntime"
cp fixtures/teacher/mnist_cnn.onnx "$OUT/run/teacher.onnx"
for m in teacher kd kd-int8 hard; do
  $D eval --model "$OUT/run/$m.onnx" --data "$OUT/cache-test" --name "$m" --out "$OUT/run/eval/$m.json" --threads 1 > /dev/null
done

step "7/7 report"
$D report "$OUT/run" --table
printf '\nmake demo: done in %ss; open %s/run/report/index.html\n' "$(( $(date +%s) - T0 ))" "$OUT"
