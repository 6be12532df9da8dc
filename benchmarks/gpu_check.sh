#!/usr/bin/env bash
# The GPU checks of issue 18 in one prepared run (about 6-8 minutes on one H200; each step has its
# own time limit, and a failed step does not stop the others). From the repository root:
#
#   mkdir -p data && cp /usr/share/datasets/fashion-mnist/*-ubyte.gz data/   # once, on the CPU machine
#   echo /data/ >> .git/info/exclude                                        # keep it out of git
#   OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh                          # on the GPU machine, carrying data/
#
# It runs tests/test_gpu.py (every recipe on CUDA, bf16, the on-device pool, torch.compile),
# tests/test_backbones.py (resnet50 and efficientnet_b0 where torchvision is installed) and
# tests/test_devices.py, then benchmarks/bench_trainer.py on CUDA: the W1 cnn and one W3 epoch
# (resnet18 width 64, batch 256, channels_last) in fp32 and bf16. Everything lands under $OUT
# (pytest.log, bench-*.json, bench-*.log, summary.md) and a short table is printed last.
# GPU_CHECK_ACCURACY=1 also trains the full W3 budget (30 epochs) in fp32 and bf16 for the
# accuracy comparison (adds about 10 minutes: run it alone).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 UNLEARNKIT_PROGRESS=0
export UNLEARNKIT_DATA=${UNLEARNKIT_DATA:-$PWD/data}
export UNLEARNKIT_CACHE=${UNLEARNKIT_CACHE:-$OUT/cache}
PY=${PYTHON:-python3}
declare -A RC

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, keep the exit status
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    RC[$name]=$?
    echo "== $name: exit ${RC[$name]} after $((SECONDS - start)) s"
}

nvidia-smi -L 2>&1 | tee "$OUT/env.log"
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, \
'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)" 2>&1 | tee -a "$OUT/env.log"
$PY -c "import torchvision; print('torchvision', torchvision.__version__)" 2>&1 | tee -a "$OUT/env.log"
ls "$UNLEARNKIT_DATA" >/dev/null 2>&1 || echo "warning: no data folder at $UNLEARNKIT_DATA (benchmarks need Fashion-MNIST)"

step pytest 300 $PY -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_backbones.py tests/test_devices.py
BENCH=(benchmarks/bench_trainer.py --device cuda --threads 8)
step bench-w1-fp32 60 $PY "${BENCH[@]}" --rounds 3 --json "$OUT/bench-w1-fp32.json"
step bench-w1-bf16 60 $PY "${BENCH[@]}" --rounds 3 --precision bf16 --json "$OUT/bench-w1-bf16.json"
W3=(--model resnet18 --width 64 --batch-size 256 --lr 0.1 --channels-last --rounds 2)
step bench-w3-fp32 120 $PY "${BENCH[@]}" "${W3[@]}" --json "$OUT/bench-w3-fp32.json"
step bench-w3-bf16 90 $PY "${BENCH[@]}" "${W3[@]}" --precision bf16 --json "$OUT/bench-w3-bf16.json"
if [ "${GPU_CHECK_ACCURACY:-0}" = 1 ]; then
    step acc-w3-bf16 420 $PY "${BENCH[@]}" "${W3[@]}" --rounds 1 --precision bf16 --accuracy --accuracy-epochs 30 \
        --json "$OUT/acc-w3-bf16.json"
    step acc-w3-fp32 600 $PY "${BENCH[@]}" "${W3[@]}" --rounds 1 --accuracy --accuracy-epochs 30 \
        --json "$OUT/acc-w3-fp32.json"
fi

$PY - "$OUT" "${RC[pytest]}" <<'EOF' | tee "$OUT/summary.md"
import json, pathlib, re, sys
out, rc = pathlib.Path(sys.argv[1]), sys.argv[2]
log = (out / "pytest.log").read_text() if (out / "pytest.log").exists() else ""
tail = [l for l in log.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", l)]
print(f"\npytest (test_gpu, test_backbones, test_devices): {tail[-1] if tail else 'no summary'} (exit {rc})\n")
print("| bench | device | precision | train() img/s | bare img/s | ratio (>= 0.95) | epoch s (W3 bf16 <= 1.0) | test acc train()/bare |")
print("|---|---|---|---|---|---|---|---|")
for name in ("bench-w1-fp32", "bench-w1-bf16", "bench-w3-fp32", "bench-w3-bf16", "acc-w3-bf16", "acc-w3-fp32"):
    p = out / f"{name}.json"
    if not p.exists():
        if (out / f"{name}.log").exists():
            print(f"| {name} | – | – | – | – | – | – | no result (see {name}.log) |")
        continue
    r = json.loads(p.read_text())
    acc = f"{r['ta_train']:.2f} / {r['ta_bare']:.2f}" if "ta_train" in r else "–"
    print(f"| {name} | {r['gpu'] or r['device']} | {r['precision']} | {r['train_img_s']:.0f} | {r['bare_img_s']:.0f} | "
          f"{r['ratio']:.3f} | {r['epoch_seconds']:.2f} | {acc} |")
EOF
