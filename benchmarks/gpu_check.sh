#!/usr/bin/env bash
# The GPU check (issue 13), under 5 minutes: bf16 training throughput, model FLOP
# utilisation and peak memory of SimCLR (ResNet-18, 64 px) and the identity method's
# descriptor pass (EfficientNet-Lite0, 96 px), on 1 GPU and with torchrun over every GPU.
# One JSON line per run on stdout, also kept in $OUT (or ./gpu-check) as gpu_check.jsonl.
#
#   bash benchmarks/gpu_check.sh            # needs a CUDA build of torch in .venv
#
# facessl never needs a GPU; this only records what one gives. Set PEAK_TFLOPS for a GPU
# other than the H200 (dense bf16: 989).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=${OUT:-gpu-check}
PEAK=${PEAK_TFLOPS:-989}
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -lt 1 ]; then
    echo "gpu_check.sh: this machine's torch sees no CUDA GPU (install a CUDA build of torch:" \
         "TORCH_SPEC=... bash scripts/setup.sh)" >&2
    exit 2
fi
mkdir -p "$DEST"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$DEST/gpus.txt"
run() {  # $1: processes; the rest: gpu_throughput.py's options
    local n=$1; shift
    if [ "$n" -eq 1 ]; then
        timeout 120 "$PY" benchmarks/gpu_throughput.py --peak-tflops "$PEAK" "$@"
    else
        timeout 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$n" \
            benchmarks/gpu_throughput.py --peak-tflops "$PEAK" "$@"
    fi
}
: > "$DEST/gpu_check.jsonl"
for n in 1 "$GPUS"; do
    run "$n" --method simclr --backbone resnet18 --size 64 --faces 32768 --batch-size 512 \
        | tee -a "$DEST/gpu_check.jsonl"
    run "$n" --method identity --backbone efficientnet_lite0 --size 96 --faces 32768 \
        --batch-size 512 | tee -a "$DEST/gpu_check.jsonl"
    [ "$GPUS" -eq 1 ] && break
done
