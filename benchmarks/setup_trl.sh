#!/usr/bin/env bash
# TRL for benchmarks/grpo_speed.py only: not part of the course's install.
#   bash benchmarks/setup_trl.sh
# Installs trl 1.16.0 and the few packages it needs that the course's .venv lacks into
# .venv/trl-benchmark (pip --target), which grpo_speed.py appends to sys.path. Nothing in .venv itself
# changes: torch stays 2.13.0 (CPU) and transformers the course's 5.24.0. --no-deps, with the list below:
# a plain `pip install trl` would resolve torch again (and pull CUDA wheels). The list is what
# `pip install --dry-run trl==1.16.0` in .venv, constrained to the course's torch and transformers,
# wants to add (accelerate, datasets and datasets' own dependencies); huggingface_hub, jinja2,
# numpy, packaging, psutil, pyyaml, requests come from .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RLCOURSE_VENV:-$PWD/.venv}
TARGET="$VENV/trl-benchmark"
[ -x "$VENV/bin/python" ] || bash scripts/course.sh setup
PACKAGES=(trl==1.16.0 accelerate==1.15.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pandas==3.1.1
          pyarrow==26.0.1 xxhash==4.1.0)
echo "==> installing ${PACKAGES[*]} into $TARGET"
"$VENV/bin/python" -m pip install --quiet --upgrade --no-deps --target "$TARGET" "${PACKAGES[@]}"
PYTHONPATH= "$VENV/bin/python" - "$TARGET" <<'PYEOF'
import sys
sys.path.append(sys.argv[1])  # as grpo_speed.py does: after .venv's own packages
import torch, transformers, trl
from trl import GRPOConfig, GRPOTrainer  # noqa: F401
print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}: ready")
PYEOF
