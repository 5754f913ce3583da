#!/usr/bin/env bash
# Install the [verl] extra (verl and what its agent loop imports) into the current Python environment, keeping its torch.
#
#   bash scripts/install_verl.sh           # then: pytest -m verl -n 0 tests/integrations/test_verl.py
#
# The installed torch version is pinned in the same pip command, so pip never swaps a CPU build for a
# CUDA one (or the reverse) while resolving verl's dependencies. Without torch, 2.13.0 is pinned; set
# TORCH_VERSION to choose. PYTHON selects the interpreter (default: python).
set -euo pipefail
PYTHON="${PYTHON:-python}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION="${TORCH_VERSION:-$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || echo 2.13.0)}"
echo "installing mapo-gym[verl] with torch==${TORCH_VERSION} into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
"$PYTHON" -m pip install "torch==${TORCH_VERSION}" -e "${ROOT}[verl]"
"$PYTHON" -c 'import torch, verl; print(f"torch {torch.__version__}, verl {verl.__version__}")'
# Note: verl 0.9.1 requires transformers<5.11, so pip downgrades a newer transformers here.
# End-to-end verl training also needs a rollout engine (vLLM or SGLang) built for your CUDA; install it
# separately, following verl's own instructions for your GPU stack.
