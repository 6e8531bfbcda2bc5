#!/usr/bin/env bash
# Check the lowest declared versions: install the lower bounds of transformers and tokenizers from
# pyproject.toml into a throw-away environment layered over .venv (it sees .venv's packages through a
# .pth line; what it installs itself comes first), then run the model and rollout tests there.
#   bash scripts/check_lowest.sh        (needs the package index, or a pip cache that has the wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV_PY="$ROOT/.venv/bin/python"
[ -x "$VENV_PY" ] || bash scripts/course.sh setup

lowest=$("$VENV_PY" - <<'PYEOF'
import tomllib
from packaging.requirements import Requirement

with open("pyproject.toml", "rb") as f:
    deps = [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]
pins = []
for req in deps:
    if req.name in ("transformers", "tokenizers"):
        (low,) = [s.version for s in req.specifier if s.operator == ">="]
        pins.append(f"{req.name}=={low}")
print(" ".join(pins))
PYEOF
)
echo "==> lowest declared: $lowest"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$VENV_PY" -m venv --without-pip "$TMP/venv"
PY="$TMP/venv/bin/python"
"$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$TMP/purelib"
"$VENV_PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$(cat "$TMP/purelib")/course_venv.pth"
# pip (from .venv) installs into the throw-away environment; .venv itself is never changed
echo "==> installing $lowest into a throw-away environment"
# shellcheck disable=SC2086
"$PY" -m pip install --quiet --disable-pip-version-check $lowest || { echo "==> pip could not install $lowest" >&2; exit 3; }
"$PY" -c "import huggingface_hub, tokenizers, torch, transformers; print(f'==> running with torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, huggingface_hub {huggingface_hub.__version__}')"
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg
"$PY" -m pytest -q -p no:cacheprovider tests/test_model.py tests/test_rollout.py tests/test_hub_conventions.py tests/test_device.py "$@"
