#!/usr/bin/env bash
# Gradescope runs this once, as root, on its Ubuntu image, with this zip unpacked in /autograder/source.
# It installs Python, the sandbox tool (bubblewrap) and the course package with the grader's dependencies.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --quiet --upgrade pip
# torch first: set TORCH_SPEC (e.g. to a CPU-only wheel) to keep the image small
/autograder/venv/bin/python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
/autograder/venv/bin/python -m pip install --quiet -c /autograder/source/course/scripts/constraints.txt \
  -e "/autograder/source/course[course]"
# where the container allows no sandbox, the student's code runs as an unprivileged user: it must be able
# to run this Python (the course itself is made unreadable to it by run_autograder)
chmod a+rx /autograder
chmod -R a+rX /autograder/venv
HOME=/tmp setpriv --reuid=65534 --regid=65534 --clear-groups /autograder/venv/bin/python -c "import torch, IPython" \
  || { echo "setup.sh: an unprivileged user cannot run /autograder/venv/bin/python" >&2; exit 1; }
