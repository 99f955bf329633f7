#!/usr/bin/env bash
# Writes the results_*.json files beside this script with a REAL lm_eval run (not run by tests).
# Needs: a venv with lm_eval 0.4.x and transformers (LMEVAL_PY), the project's venv for the tiny
# model (PROJECT_PY). No network: the tasks are local JSON files (tasks/), the model is built here.
#   python3 -m venv /work/lmeval-venv
#   /work/lmeval-venv/bin/pip install torch==2.13.0      # the CPU wheel
#   /work/lmeval-venv/bin/pip install "lm_eval==0.4.*" transformers==5.24.0 accelerate==1.15.0
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
LMEVAL_PY="${LMEVAL_PY:-/work/lmeval-venv/bin/python}"
PROJECT_PY="${PROJECT_PY:-/work/main/.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false HF_HOME="$work/hf"

# the tiny random Llama of the tests (registry/testing/tiny.py), with its tokenizer
(cd "$repo" && "$PROJECT_PY" -c "from pathlib import Path; from registry.testing.tiny import build_llama; build_llama(Path('$work/tiny-llama'))")

run() {  # run NAME LM_EVAL_ARGS...: one lm_eval run, its results file copied to results_NAME.json
  local name="$1"; shift
  (cd "$here" && "$LMEVAL_PY" -m lm_eval --model hf \
      --model_args "pretrained=$work/tiny-llama,dtype=float32" --device cpu --batch_size 4 \
      --include_path "$here/tasks" --output_path "$work/out-$name" --seed 1234 "$@")
  local f
  f="$(find "$work/out-$name" -name 'results_*.json' | head -1)"
  # the temporary paths would differ on every run: name them the same way each time
  sed -e "s#$work/tiny-llama#/tmp/tiny-llama#g" -e "s#$here#tests/data/lm_eval#g" \
      -e "s#__tmp__tmp\.[A-Za-z0-9]*__#__tmp__#g" "$f" > "$here/results_$name.json"
}

run 5shot --tasks tiny_group,tiny_gen --num_fewshot 5
run 0shot --tasks tiny_group,tiny_gen --num_fewshot 0
run ppl --tasks tiny_ppl
"$LMEVAL_PY" -c "import lm_eval, torch, transformers; print('lm_eval', lm_eval.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" > "$here/VERSIONS.txt" 2>/dev/null || \
  "$LMEVAL_PY" -m pip show lm_eval torch transformers | grep -E '^(Name|Version)' > "$here/VERSIONS.txt"
