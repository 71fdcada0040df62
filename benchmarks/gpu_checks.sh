#!/usr/bin/env bash
# The CUDA checks and GPU figures in one run, for a machine with an NVIDIA GPU:
#   versions, tests/test_cuda.py (loss vs float64 reference on the GPU, fp16/bf16 autocast, train.py with
#   fp16 + grad scaler / bf16, channels_last, torch.compile), the loss benchmark and the step benchmark
#   (ResNet-50 and ViT-B/16 at 224 px, 128 images x 2 views, --amp --channels-last).
# Usage: OUT=folder bash benchmarks/gpu_checks.sh   (FASHION_MNIST_DIR: folder of the IDX .gz files if
# Debian's dataset-fashion-mnist is not installed)
set -uo pipefail
OUT=${OUT:-output/gpu_checks}
mkdir -p "$OUT"
status=0
python3 - <<'PY' 2>&1 | tee "$OUT/versions.txt"
import torch, torchvision, timm
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)
print('device', torch.cuda.get_device_name(), 'capability', torch.cuda.get_device_capability())
PY
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log" || status=1
python3 benchmarks/bench_loss.py --device cuda --repeats 50 --warmup 10 2>&1 | tee "$OUT/bench_loss.md" || status=1
python3 benchmarks/bench_loss.py --device cuda --repeats 50 --warmup 10 --loss dscl 2>&1 \
  | tee "$OUT/bench_loss_dscl.md" || status=1
python3 benchmarks/bench_loss.py --device cuda --repeats 20 --warmup 5 --loss pixel 2>&1 \
  | tee "$OUT/bench_loss_pixel.md" || status=1
: > "$OUT/bench_step.jsonl"
for model in resnet50 vit_base_patch16_224; do
  for amp in bfloat16 float16; do
    python3 benchmarks/bench_step.py --device cuda --model "$model" --num-classes 1000 --img-size 224 -b 128 \
      --amp --amp-dtype "$amp" --channels-last --steps 10 --warmup 3 --rounds 3 --guard --json "$OUT/step.json" \
      > "$OUT/step.log" 2>&1 || { status=1; cat "$OUT/step.log"; }
    python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))" "$OUT/step.json" \
      | tee -a "$OUT/bench_step.jsonl"
  done
done
# DSCL with and without PBSD (5 patches of 64 px per image) on a ResNet-50; per-view and joint forwards
python3 benchmarks/bench_step.py --device cuda --model resnet50 --num-classes 1000 --img-size 224 -b 128 \
  --amp --amp-dtype bfloat16 --channels-last --steps 10 --warmup 3 --rounds 3 --pbsd --view-forward \
  --json "$OUT/step.json" \
  > "$OUT/step.log" 2>&1 || { status=1; cat "$OUT/step.log"; }
python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))" "$OUT/step.json" \
  | tee -a "$OUT/bench_step.jsonl"
rm -f "$OUT/step.json" "$OUT/step.log"
exit $status
