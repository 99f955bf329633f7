#!/usr/bin/env bash
# The one prepared GPU run (../shared/device/README.md): the GPU tests and the GPU benchmarks of
# issues 3 and 4, results under $OUT. Run it through the device tool, once, with `.whl` carried:
#   ../shared/device/wheels.sh .venv .whl     # once, here: wheels the GPU image lacks
#   run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=580)
set -uo pipefail
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
# 1. CUDA tests (merge and verify on the GPU)
timeout 150 python3 -m pytest -m gpu -q tests/merge/test_gpu.py tests/verify/test_gpu.py 2>&1 | tee "$OUT/pytest-gpu.log"
# 2. verification with the base-model cache vs reloading the base (target >= 5x for 20 adapters)
timeout 150 python3 bench/verify.py --adapters 20 --size small --device cuda --dtype bf16 2>&1 | tee "$OUT/verify.log"
# 3. merge on Llama-3-8B's shape, 16 GB bf16: streaming vs peft vs cp (targets: <= 1.5x cp, <= 0.2x peft GPU memory)
timeout 330 python3 bench/merge.py --size 8b --device cuda --repeats 1 --engines cp,peft-raw,streaming \
  --results /tmp/bench-results 2>&1 | tee "$OUT/merge-8b.log"
cp /tmp/bench-results/merge-8b-cuda.json "$OUT/" 2>/dev/null
exit 0
