#!/usr/bin/env bash
# Install headless Chromium and its driver from Debian for the browser test (tests/test_browser.py).
#   bash scripts/install_browser.sh      (as root, or with sudo available; about 100 MB)
# `bash scripts/course.sh test` calls it when no chromium is on PATH. It exits 0 when Chromium is
# already there, 1 when it cannot install it (not root and no sudo, no apt-get, or apt failed).
set -euo pipefail
found() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
if found; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; install Chromium yourself to run the browser test" >&2; exit 1
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n)
  else echo "install_browser: need root (or passwordless sudo) to apt-get install chromium" >&2; exit 1; fi
fi
echo "==> installing chromium from Debian (for the browser test)"
export DEBIAN_FRONTEND=noninteractive
if ! ${SUDO[@]+"${SUDO[@]}"} apt-get install -y -q --no-install-recommends chromium >/tmp/rlcourse-apt.log 2>&1; then
  ${SUDO[@]+"${SUDO[@]}"} apt-get update -q >>/tmp/rlcourse-apt.log 2>&1 || true
  ${SUDO[@]+"${SUDO[@]}"} apt-get install -y -q --no-install-recommends chromium >>/tmp/rlcourse-apt.log 2>&1 \
    || { echo "install_browser: apt-get install chromium failed (log: /tmp/rlcourse-apt.log)" >&2; exit 1; }
fi
found
