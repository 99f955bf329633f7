#!/usr/bin/env bash
# The one prepared GPU run (../shared/device/README.md): the GPU tests and the GPU benchmarks of
# issues 3 and 4, results under $OUT. Run it through the device tool, once, with `.whl` carried:
#   ../shared/device/wheels.sh .venv .whl     # once, here: wheels the GPU image lacks
#   run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=580)
# `bash bench/gpu.sh vllm` runs only part 4, the CUDA vLLM half (its own device run: ~7 min at most).
set -uo pipefail
PART=${1:-all}
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)" \
  > "$OUT/versions.txt" 2>&1
if [ "$PART" = all ]; then
# 1. CUDA tests (merge and verify on the GPU)
timeout 150 python3 -m pytest -m gpu -q tests/merge/test_gpu.py tests/verify/test_gpu.py 2>&1 | tee "$OUT/pytest-gpu.log"
# 2. verification with the base-model cache vs reloading the base (target >= 5x for 20 adapters)
timeout 150 python3 bench/verify.py --adapters 20 --size small --device cuda --dtype bf16 2>&1 | tee "$OUT/verify.log"
# 3. merge on Llama-3-8B's shape, 16 GB bf16: streaming vs peft vs cp (targets: <= 1.5x cp, <= 0.2x peft GPU memory)
timeout 330 python3 bench/merge.py --size 8b --device cuda --repeats 1 --engines cp,peft-raw,streaming \
  --results /tmp/bench-results 2>&1 | tee "$OUT/merge-8b.log"
cp /tmp/bench-results/merge-8b-cuda.json "$OUT/" 2>/dev/null
fi
# 4. the CUDA vLLM half of `verify --engine vllm` (issue 14): vLLM against peft on the GPU, float32 and
#    bfloat16, 4 adapters in one engine. Needs the CUDA `vllm` package importable by python3 (the GPU
#    image here has none and no network: then it only records that it was skipped).
if python3 -c "import vllm" > "$OUT/vllm-import.log" 2>&1; then
  VLLM_ENABLE_V1_MULTIPROCESSING=0 timeout 420 python3 bench/vllm_cuda.py --adapters 4 --dtypes float32,bfloat16 \
    --out "$OUT/vllm-cuda.json" 2>&1 | tee "$OUT/vllm-cuda.log"
else
  echo "skipped: vllm is not importable by python3 here (see vllm-import.log)" | tee "$OUT/vllm-cuda.log"
fi
exit 0
