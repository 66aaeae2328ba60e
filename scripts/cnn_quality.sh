#!/usr/bin/env bash
# cnn_quality.sh: MNIST test errors of convolutional students (the PyTorch
# peer's presets) distilled from the project's teacher CNN and from an
# ensemble of MNIST teachers, against the same students on hard labels,
# over several seeds. Writes a markdown table to $CNNQ_OUT/cnn-quality.md
# (and each run's checkpoint, log and eval JSON under $CNNQ_OUT/runs).
#
#   scripts/cnn_quality.sh            # after make build (make bench runs it as section cnn-quality)
#
# Settings (environment): CNNQ_OUT (default bench-out/cnn-quality),
# CNNQ_ARCHS ("tiny dws lenet5"), CNNQ_SEEDS ("1 2 3"), CNNQ_EPOCHS (10),
# CNNQ_ALPHA (0.9), CNNQ_T (4), CNNQ_THREADS (2), CNNQ_LR (1e-3),
# CNNQ_ENSEMBLE_ARCHS (the students also trained on the ensemble; default
# "tiny dws"), CNNQ_JOBS (runs at once, default 1).
# The recipe is the peer's (torch_kd_train.py --arch cnn:...): Adam(W with
# no decay) lr 1e-3, batch 128, 10 epochs, constant learning rate, KD
# alpha 0.9 T 4; the student standardizes its input per channel.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
D=${DISTILL:-$root/bin/distill}
OUT=${CNNQ_OUT:-bench-out/cnn-quality}
ARCHS=${CNNQ_ARCHS:-tiny dws lenet5}
SEEDS=${CNNQ_SEEDS:-1 2 3}
EPOCHS=${CNNQ_EPOCHS:-10}
ALPHA=${CNNQ_ALPHA:-0.9}
T=${CNNQ_T:-4}
THREADS=${CNNQ_THREADS:-2}
LR=${CNNQ_LR:-1e-3}
ENS_ARCHS=${CNNQ_ENSEMBLE_ARCHS-tiny dws}
JOBS=${CNNQ_JOBS:-1}
TEACHERS=${SHARED_TEACHERS:-$root/../shared/teachers}
PROJECT_TEACHER=$root/fixtures/teacher/mnist_cnn.onnx
[ -x "$D" ] || { echo "cnn_quality: $D is missing: run make build" >&2; exit 1; }
command -v jq >/dev/null || { echo "cnn_quality: needs jq" >&2; exit 1; }
mkdir -p "$OUT/data" "$OUT/runs" "$OUT/logs"

say() { printf '   %s\n' "$*"; }

# ---------------------------------------------------------------- caches
# Each teacher over MNIST train and test, with its own preprocessing (see
# ../shared/teachers/README.md: the zoo and dynbatch LeNet take raw pixels,
# the b10 LeNet normalized ones, the project's teacher pixels/255).
for s in train test; do
  [ -f "$OUT/data/$s.parquet" ] || "$D" data mnist --split $s --out "$OUT/data/$s.parquet" >/dev/null
done
extract() { # NAME TEACHER [FLAGS...]
  local name=$1 teacher=$2; shift 2
  for s in train test; do
    [ -f "$OUT/data/$name-$s/manifest.json" ] && continue
    rm -rf "$OUT/data/$name-$s"
    "$D" extract --teacher "$teacher" --data "$OUT/data/$s.parquet" --out "$OUT/data/$name-$s" --threads "$THREADS" "$@" \
      >"$OUT/logs/extract-$name-$s.log" 2>&1 || { cat "$OUT/logs/extract-$name-$s.log" >&2; exit 1; }
  done
}
extract project "$PROJECT_TEACHER" --scale 1/255
extract zoo "$TEACHERS/mnist8-zoo.onnx"
extract lenet5 "$TEACHERS/mnist-lenet5-dynbatch.onnx"
extract lenet5b10 "$TEACHERS/mnist-lenet5-b10-softmax.onnx" --scale 1/255 --mean 0.1307 --std 0.3081

# teacher_errors TEACHER [PREPROCESSING...]: test errors of a teacher in onnxruntime
teacher_errors() {
  local m=$1; shift
  "$D" eval --model "$m" --data "$OUT/data/test.parquet" --bench-time 0 --json "$@" 2>"$OUT/logs/teacher-eval.log" | jq -r .errors
}
E_PROJECT=$(teacher_errors "$PROJECT_TEACHER" --scale 1/255)
E_ZOO=$(teacher_errors "$TEACHERS/mnist8-zoo.onnx")
E_LENET5=$(teacher_errors "$TEACHERS/mnist-lenet5-dynbatch.onnx")
E_LENET5B10=$(teacher_errors "$TEACHERS/mnist-lenet5-b10-softmax.onnx" --scale 1/255 --mean 0.1307 --std 0.3081)
say "teachers' test errors: project $E_PROJECT, zoo $E_ZOO, lenet5 $E_LENET5, lenet5 b10 $E_LENET5B10"

# ---------------------------------------------------------------- runs
# run TAG ALPHA ARCH SEED CACHE...: train, then count test errors in eval mode.
run() {
  local tag=$1 alpha=$2 arch=$3 seed=$4; shift 4
  local ck=$OUT/runs/$tag.ckpt
  if [ ! -f "$OUT/runs/$tag.eval.json" ]; then
    local caches=()
    for c in "$@"; do caches+=(--cache "$OUT/data/$c-train"); done
    rm -rf "$ck"
    "$D" train "${caches[@]}" --val "$OUT/data/project-test" --out "$ck" --student cnn --arch "$arch" \
      --alpha "$alpha" --temperature "$T" --epochs "$EPOCHS" --lr "$LR" --batch 128 --seed "$seed" --threads "$THREADS" \
      >"$OUT/logs/$tag.log" 2>&1 || { cat "$OUT/logs/$tag.log" >&2; exit 1; }
    # the student takes the project teacher's input (pixels/255), as its cache recorded
    "$D" eval --model "$ck" --data "$OUT/data/test.parquet" --scale 1/255 --teacher-cache "$OUT/data/project-test" \
      --threads "$THREADS" --bench-time 0 --json >"$OUT/runs/$tag.eval.json.tmp" 2>"$OUT/logs/$tag.eval.log" \
      || { cat "$OUT/logs/$tag.eval.log" >&2; exit 1; }
    mv "$OUT/runs/$tag.eval.json.tmp" "$OUT/runs/$tag.eval.json"
  fi
  say "$tag: $(jq .errors "$OUT/runs/$tag.eval.json") test errors"
}
runs=()
for arch in $ARCHS; do
  for seed in $SEEDS; do
    runs+=("$arch-kd-s$seed $ALPHA $arch $seed project" "$arch-labels-s$seed 0 $arch $seed project")
  done
done
for arch in $ENS_ARCHS; do
  for seed in $SEEDS; do
    runs+=("$arch-ens-s$seed $ALPHA $arch $seed project zoo lenet5 lenet5b10")
  done
done
if [ "$JOBS" -gt 1 ]; then
  export -f run say; export D OUT T EPOCHS LR THREADS
  printf '%s\n' "${runs[@]}" | xargs -P "$JOBS" -I{} bash -c 'run {}'
else
  for r in "${runs[@]}"; do
    # shellcheck disable=SC2086
    run $r
  done
fi

# ---------------------------------------------------------------- table
errs() { # TAG-PREFIX: the seeds' errors, comma-separated, and their mean
  local list=() sum=0 n=0 e
  for seed in $SEEDS; do
    e=$(jq .errors "$OUT/runs/$1-s$seed.eval.json")
    list+=("$e"); sum=$((sum + e)); n=$((n + 1))
  done
  echo "$(IFS=,; echo "${list[*]}") | **$(awk -v s=$sum -v n=$n 'BEGIN { printf "%.1f", s / n }')**"
}
# params TAG-PREFIX: the student's trainable parameters (as torch counts them:
# no BatchNorm statistics, no input standardization), from its model.safetensors
params() {
  python3 - "$OUT/runs/$1-s${SEEDS%% *}.ckpt/model.safetensors" <<'PY'
import json, math, struct, sys
f = open(sys.argv[1], "rb")
h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
skip = ("running_mean", "running_var", "num_batches_tracked")
n = sum(math.prod(v["shape"]) for k, v in h.items() if k != "__metadata__" and not k.startswith("input_") and k.split(".")[-1] not in skip)
print(f"{n:,}")
PY
}
{
  echo "MNIST test errors (of 10,000) of convolutional students, $EPOCHS epochs, batch 128, Adam lr $LR, seeds $SEEDS;"
  echo "KD: α $ALPHA, T $T from the project's teacher CNN (454,922 parameters, $E_PROJECT errors);"
  echo "ensemble: the mean of the tempered probabilities of the project's teacher and the three MNIST teachers of"
  echo "\`../shared/teachers\` (zoo $E_ZOO, LeNet-5 $E_LENET5, LeNet-5 b10 $E_LENET5B10 errors)."
  echo "Parameters as torch counts them (weights and biases; not the BatchNorm statistics or the input standardization)."
  echo
  echo "| student | parameters | targets | errors per seed | mean |"
  echo "|---|---:|---|---|---:|"
  for arch in $ARCHS; do
    echo "| $arch | $(params $arch-kd) | hard labels | $(errs $arch-labels) |"
    echo "| $arch | $(params $arch-kd) | KD, project teacher | $(errs $arch-kd) |"
    if [[ " $ENS_ARCHS " == *" $arch "* ]]; then
      echo "| $arch | $(params $arch-kd) | KD, ensemble of 4 teachers | $(errs $arch-ens) |"
    fi
  done
} >"$OUT/cnn-quality.md"
cat "$OUT/cnn-quality.md"
