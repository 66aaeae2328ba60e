#!/usr/bin/env bash
# make demo: the whole pipeline twice, on real data with real teachers.
#  - MNIST with the project's CNN teacher (fixtures/teacher/mnist_cnn.onnx):
#    extract its logits and penultimate layer once, train a distilled (KD)
#    student and a hard-label student of the same architecture against the
#    cache, export both to ONNX (verified in onnxruntime), evaluate.
#  - TinyStories with the stories260K language model
#    (../shared/teachers/seq): tokenize, extract its top-32 next-token targets
#    and one hidden state once, train a half-size transformer student with KD
#    and the same student on the text alone, export both as decoders with a
#    KV cache (verified), evaluate perplexity, agreement and decode speed
#    against the teacher, and generate a sample from each.
# Then one report of everything. Expects `make setup build` to have run (the
# Makefile's demo target does that). DEMO_LM=0 skips the language models.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-out}
D=bin/distill
LAYERS=${DEMO_LAYERS:-128}
EPOCHS=${DEMO_EPOCHS:-10}
LM=${DEMO_LM:-1}
LM_EPOCHS=${DEMO_LM_EPOCHS:-8}
SEQ=${DEMO_SEQ_DIR:-../shared/teachers/seq}
T0=$(date +%s)
step() { printf '\n== [%3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

rm -rf "$OUT/run"
mkdir -p "$OUT/data" "$OUT/run/eval"
step "1/13 MNIST as Parquet (60,000 train, 10,000 test images)"
for split in train test; do
  [ -f "$OUT/data/mnist-$split.parquet" ] || $D data mnist --split $split --out "$OUT/data/mnist-$split.parquet"
done

step "2/13 the teacher's tensors (the penultimate layer 'hidden' is cached too)"
$D tensors fixtures/teacher/mnist_cnn.onnx

step "3/13 extract: run the teacher once over train and test; cache logits, hidden state and inputs"
for split in train test; do
  rm -rf "$OUT/cache-$split"
  $D extract --teacher fixtures/teacher/mnist_cnn.onnx --data "$OUT/data/mnist-$split.parquet" \
    --out "$OUT/cache-$split" --scale 1/255 --hidden hidden --keep-input
done
$D inspect "$OUT/cache-test" --verify --rows 2

step "4/13 train two 784-${LAYERS//,/-}-10 students on the cache: distilled (alpha 0.9, T 4) and hard labels (alpha 0)"
$D train --cache "$OUT/cache-train" --val "$OUT/cache-test" --out "$OUT/run/kd.ckpt" \
  --layers "$LAYERS" --alpha 0.9 --temperature 4 --epochs "$EPOCHS" --lr 1e-3 --seed 1
$D train --cache "$OUT/cache-train" --val "$OUT/cache-test" --out "$OUT/run/hard.ckpt" \
  --layers "$LAYERS" --alpha 0 --epochs "$EPOCHS" --lr 1e-3 --seed 1

step "5/13 export both students to ONNX, verified against the Go students in onnxruntime"
$D export --student "$OUT/run/kd.ckpt" --out "$OUT/run/kd.onnx" --verify "$OUT/cache-test"
$D export --student "$OUT/run/kd.ckpt" --out "$OUT/run/kd-int8.onnx" --quantize int8 --verify "$OUT/cache-test"
$D export --student "$OUT/run/hard.ckpt" --out "$OUT/run/hard.onnx" --verify "$OUT/cache-test"

step "6/13 evaluate teacher and students on the 10,000 test images in onnxruntime"
cp fixtures/teacher/mnist_cnn.onnx "$OUT/run/teacher.onnx"
for m in teacher kd kd-int8 hard; do
  $D eval --model "$OUT/run/$m.onnx" --data "$OUT/cache-test" --name "$m" --out "$OUT/run/eval/$m.json" --threads 1 > /dev/null
done

if [ "$LM" != 0 ]; then
  for f in stories260K.onnx stories260K-kv.onnx tok512.bin tinystories_val.txt; do
    [ -f "$SEQ/$f" ] || { echo "make demo: $SEQ/$f is missing (the shared teachers beside the checkout; DEMO_LM=0 skips the language models)" >&2; exit 1; }
  done
  L=$OUT/lm
  mkdir -p "$L"
  step "7/13 TinyStories as windows of 256 tokens (stories260K's tokenizer; every 10th window held out)"
  $D data text --tokenizer "$SEQ/tok512.bin" --seq-len 256 --join-blocks 8 --val-every 10 \
    --val-out "$L/val.parquet" --out "$L/train.parquet" "$SEQ/tinystories_val.txt"

  step "8/13 extract: stories260K once over both; its top-32 next-token targets and hidden_states.5"
  rm -rf "$L/cache-train" "$L/cache-val"
  $D extract --teacher "$SEQ/stories260K.onnx" --data "$L/train.parquet" --out "$L/cache-train" \
    --topk 32 --dtype f16 --keep-input --hidden hidden_states.5
  $D extract --teacher "$SEQ/stories260K.onnx" --data "$L/val.parquet" --out "$L/cache-val" --topk 32 --dtype f16 --keep-input

  step "9/13 train two half-size transformer students ($LM_EPOCHS epochs): KD (alpha 0.9, T 1, + hidden_states.5 at its last block, cosine, weight 0.5) and hard labels (alpha 0)"
  common=(--student transformer --val "$L/cache-val" --layers 4 --dim 48 --heads 4 --kv-heads 2 --ffn 128
    --epochs "$LM_EPOCHS" --batch 16 --lr 3e-3 --schedule cosine --warmup 50 --adam-beta2 0.95 --seed 1)
  $D train "${common[@]}" --cache "$L/cache-train" --out "$OUT/run/lm-kd" --alpha 0.9 --temperature 1 \
    --feature hidden_states.5=4:0.5 --feature-loss cosine
  $D train "${common[@]}" --cache "$L/cache-train" --out "$OUT/run/lm-hard" --alpha 0

  step "10/13 export both as decoders with a KV cache (config.json, genai_config.json, the tokenizer beside), verified in onnxruntime"
  for m in kd hard; do
    $D export --student "$OUT/run/lm-$m" --out "$L/lm-$m-onnx" --verify "$L/cache-val"
  done

  step "11/13 evaluate teacher and students on the held-out windows: perplexity, agreement, KL, prefill and decode speed (onnxruntime, 1 thread)"
  $D eval --model "$SEQ/stories260K-kv.onnx" --data "$L/cache-val" --name lm-teacher --out "$OUT/run/eval/lm-teacher.json" --threads 1 > /dev/null
  for m in kd hard; do
    $D eval --model "$L/lm-$m-onnx" --data "$L/cache-val" --name "lm-$m" --out "$OUT/run/eval/lm-$m.json" --threads 1 > /dev/null
  done

  step "12/13 generate: the same prompts, continued greedily by the teacher and by each student"
  for m in teacher kd hard; do
    model=$L/lm-$m-onnx
    [ $m = teacher ] && model=$SEQ/stories260K-kv.onnx
    $D generate --model "$model" --tokenizer "$SEQ/tok512.bin" --temperature 0 --max-new 60 --threads 1 \
      --prompt "Once upon a time, there was a little dog" --prompt "Tom and Sue went to the park. They" \
      --out "$OUT/run/samples-$m.jsonl" > /dev/null
  done
fi

step "13/13 report"
$D report "$OUT/run" --table
printf '\nmake demo: done in %ss; open %s/run/report/index.html\n' "$(( $(date +%s) - T0 ))" "$OUT"
