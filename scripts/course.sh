#!/usr/bin/env bash
# One entry point for the course, on a fresh machine:
#   bash scripts/course.sh lab     set up (once) and start JupyterLab on your workspace (workspace/,
#                                  a copy of notebooks/ made on the first run)
#   bash scripts/course.sh update  bring new and updated course notebooks into your workspace
#                                  (a notebook you changed is kept; the new version goes beside it)
#   bash scripts/course.sh test    set up (once) and run every test
#   bash scripts/course.sh setup   set up only
#   bash scripts/course.sh instructor   JupyterLab on the repository with nbgrader's instructor tools (formgrader)
#   bash scripts/course.sh nbgrader ARGS  a stock nbgrader command, run at the course root (nbgrader_config.py)
#   bash scripts/course.sh gradescope ASSIGNMENT   the zip for Gradescope's autograder (autograder/README.md)
#   bash scripts/course.sh help    this text
#   bash scripts/course.sh grade SUBMISSIONS [--out DIR] [--db URL] [--workers N] [--nbgrader-dir DIR]
#                                  grade a folder or zip of submissions in a sandbox (autograder/README.md;
#                                  installs bubblewrap with apt-get when missing, as root)
# The environment is a virtualenv in .venv with torch 2.13.0 (CPU) pinned; it is rebuilt when
# pyproject.toml or scripts/constraints.txt change. Set PYTHON to choose the interpreter,
# RLCOURSE_VENV to use another environment (e.g. RLCOURSE_VENV="$CONDA_PREFIX" in the conda
# environment of environment.yml), RLCOURSE_WORKSPACE to put the workspace elsewhere
# (coursetools/workspace.py explains the workspace).
set -euo pipefail
CALLER_PWD=$(pwd)
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${RLCOURSE_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.course-stamp"
WORKSPACE=${RLCOURSE_WORKSPACE:-$ROOT/workspace}
want=$(cat pyproject.toml scripts/constraints.txt | sha256sum | cut -d' ' -f1)

# The grader runs student code in a bubblewrap sandbox (autograder/sandbox.py): install it when missing.
system_packages() {
  command -v bwrap >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing bubblewrap (the grader's sandbox)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; } >/dev/null 2>&1 \
      || echo "    could not install bubblewrap: grading needs it (or --no-sandbox)" >&2
  else
    echo "note: grading needs bubblewrap (apt-get install bubblewrap, as root)" >&2
  fi
}

setup() {
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then return; fi
  echo "==> setting up $VENV (torch 2.13.0 CPU, the course package, JupyterLab, nbgrader, pytest)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  "$VENV/bin/python" -m pip install --quiet -c scripts/constraints.txt -e ".[course,test]"
  echo "$want" > "$STAMP"
}

cmd=${1:-lab}
shift || true
case "$cmd" in
  setup) setup ;;
  lab)
    setup
    # creates the workspace on the first run and writes its Jupyter configuration (student mode)
    "$VENV/bin/python" -m coursetools.workspace lab --workspace "$WORKSPACE"
    export HF_HUB_OFFLINE=1 JUPYTER_CONFIG_PATH="$WORKSPACE/.jupyter${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
    extra=()
    [ "$(id -u)" = 0 ] && extra+=(--allow-root)  # containers often run as root; Jupyter refuses without it
    cd "$WORKSPACE"  # nbgrader also reads ./nbgrader_config.py: the workspace has none, the repository is the instructor's
    exec "$VENV/bin/jupyter" lab --notebook-dir="$WORKSPACE" ${extra[@]+"${extra[@]}"} "$@" ;;  # (this form also works on bash 3.2 with set -u)
  instructor)
    setup
    export HF_HUB_OFFLINE=1 PATH="$VENV/bin:$PATH"  # nbgrader runs `alembic` and `jupyter` from the PATH
    extra=()
    [ "$(id -u)" = 0 ] && extra+=(--allow-root)
    exec "$VENV/bin/jupyter" lab --notebook-dir="$ROOT" ${extra[@]+"${extra[@]}"} "$@" ;;
  gradescope)
    setup
    cd "$CALLER_PWD"
    exec "$VENV/bin/python" "$ROOT/scripts/gradescope.py" "$@" ;;
  nbgrader)
    setup
    export PATH="$VENV/bin:$PATH"
    exec "$VENV/bin/nbgrader" "$@" ;;
  update)
    setup
    exec "$VENV/bin/python" -m coursetools.workspace update --workspace "$WORKSPACE" "$@" ;;
  test)
    setup
    system_packages
    # the browser test needs Chromium: install it from Debian when it is missing (it skips if this fails)
    bash scripts/install_browser.sh || echo "(no Chromium: the browser test will be skipped)"
    export HF_HUB_OFFLINE=1 MPLBACKEND=Agg
    exec "$VENV/bin/python" -m pytest "$@" ;;
  grade)
    setup
    system_packages
    export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    cd "$CALLER_PWD"  # relative paths (SUBMISSIONS, --out, --db) are the caller's
    exec "$VENV/bin/python" -m autograder.grade "$@" ;;
  help|-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: bash scripts/course.sh [lab|update|test|setup|grade|gradescope|instructor|nbgrader|help] [args...]" >&2; exit 2 ;;
esac
