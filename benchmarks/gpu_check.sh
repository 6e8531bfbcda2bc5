#!/usr/bin/env bash
# The GPU check: every solution notebook in full mode on a CUDA GPU, with nothing but the course's
# runtime packages installed (torch, transformers, tokenizers, safetensors, numpy, matplotlib, tqdm;
# no Jupyter, nbgrader, nbformat or nbclient), offline. From the repository root:
#
#   bash benchmarks/gpu_check.sh                        # device checks + every notebook, full mode
#   bash benchmarks/gpu_check.sh 04_ppo_rlhf 05_grpo    # some notebooks
#   bash benchmarks/gpu_check.sh --reduced              # reduced mode (a few steps per loop)
#   bash benchmarks/gpu_check.sh --jobs 8               # all notebooks at once, side by side on the GPU
#   bash benchmarks/gpu_check.sh --allow-cpu --reduced  # try it out on a machine without a GPU
#
# Prints python/torch/transformers versions and the GPU, then benchmarks/device_check.py (helpers
# on the GPU, the first-step ratio with Hub GPT-2's conventions), then per notebook its output, wall
# time and [result] lines, and a summary. Exits non-zero, with the traceback, if anything fails.
# The course is imported from this checkout through PYTHONPATH: nothing is installed.
# PYTHON chooses the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 MPLBACKEND=Agg

need_cuda=(--require-cuda)
args=()
for a in "$@"; do
  if [ "$a" = "--allow-cpu" ]; then need_cuda=(); else args+=("$a"); fi
done

if ! "$PY" -c "import matplotlib" >/dev/null 2>&1; then  # a bare GPU machine: plots become no-ops
  echo "matplotlib is not installed: benchmarks/matplotlib_stub stands in (no plots, the [result] lines print)"
  export PYTHONPATH="$(pwd)/benchmarks/matplotlib_stub:$PYTHONPATH"
fi
"$PY" - <<'PYEOF' || exit 2
import importlib.util, sys
missing = [m for m in ("torch", "transformers", "tokenizers", "safetensors", "numpy", "matplotlib", "tqdm")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing packages: {', '.join(missing)}")
import torch, transformers, rlcourse
print(f"python {sys.version.split()[0]}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
      f"transformers {transformers.__version__}; rlcourse from {rlcourse.__path__[0]}")
print("GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
PYEOF

echo; echo "##### device checks"
TQDM_DISABLE=1 "$PY" benchmarks/device_check.py
device_status=$?

echo; echo "##### notebooks"
"$PY" benchmarks/run_notebook.py ${need_cuda[@]+"${need_cuda[@]}"} ${args[@]+"${args[@]}"}
notebooks_status=$?

echo
if [ "$device_status" -ne 0 ] || [ "$notebooks_status" -ne 0 ]; then
  echo "GPU CHECK FAILED (device checks: exit $device_status, notebooks: exit $notebooks_status)" >&2
  exit 1
fi
echo "GPU check passed"
