#!/usr/bin/env bash
# Install the [trl] extra (TRL, datasets) into the current Python environment, keeping its torch.
#
#   bash scripts/install_trl.sh            # then: pytest -m trl -n 0 tests/integrations/test_trl.py
#
# The installed torch version is pinned in the same pip command, so pip never swaps a CPU build for a
# CUDA one (or the reverse) while resolving TRL's dependencies. Without torch, 2.13.0 is pinned; set
# TORCH_VERSION to choose. PYTHON selects the interpreter (default: python).
set -euo pipefail
PYTHON="${PYTHON:-python}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION="${TORCH_VERSION:-$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || echo 2.13.0)}"
echo "installing mapo-gym[trl] with torch==${TORCH_VERSION} into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
"$PYTHON" -m pip install "torch==${TORCH_VERSION}" -e "${ROOT}[trl]"
"$PYTHON" -c 'import torch, trl; print(f"torch {torch.__version__}, trl {trl.__version__}")'
