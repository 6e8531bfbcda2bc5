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
