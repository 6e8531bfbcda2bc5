"""The sandbox's zygote (autograder/sandboxed/student_server.py ``Zygote``): after a hidden test the student's
process is replaced by a fresh fork, and the fresh one finds nothing the old one kept (globals, files in the
scratch, processes it left running), cannot reach the zygote, and a zygote that is gone or stopped costs a new
sandbox, never a wrong answer."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from autograder import remote, sandbox

pytestmark = pytest.mark.skipif(sandbox.bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")

PROBES = r"""
import ctypes, os, signal, time
KEPT = []

def keep(x):
    KEPT.append(x)
    with open('/tmp/kept', 'w') as f:
        f.write(str(x))
    with open('/dev/shm/kept', 'w') as f:
        f.write(str(x))
    os.makedirs('/tmp/locked/inner', exist_ok=True)
    with open('/tmp/locked/inner/kept', 'w') as f:
        f.write(str(x))
    os.chmod('/tmp/locked/inner', 0)
    os.chmod('/tmp/locked', 0)
    if os.fork() == 0:  # a daemon that would hand the value on to the next process
        os.setsid()
        if os.fork() == 0:
            while True:
                with open('/tmp/daemon', 'w') as f:
                    f.write(str(x))
                time.sleep(0.02)
        os._exit(0)
    time.sleep(0.1)
    return len(KEPT)

def recall():
    found = [str(v) for v in KEPT]
    for path in ('/tmp/kept', '/dev/shm/kept', '/tmp/daemon', '/tmp/locked'):
        if os.path.exists(path):
            found.append(path)
    others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid(), os.getppid())]
    return found, len(others)

def reach_zygote():
    z, out = os.getppid(), {}
    for what in ('mem', 'environ', 'maps', 'fd'):
        try:
            if what == 'fd':
                os.listdir(f'/proc/{z}/fd')
            else:
                open(f'/proc/{z}/{what}', 'rb').read(16)
            out[what] = 'read'
        except OSError as exc:
            out[what] = type(exc).__name__
    libc = ctypes.CDLL(None, use_errno=True)
    out['ptrace'] = 'attached' if libc.ptrace(16, z, 0, 0) == 0 else 'refused'
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT, signal.SIGALRM):
        os.kill(z, sig)
    return out

def kill_zygote():
    os.kill(os.getppid(), signal.SIGKILL)
    return 1

def stop_zygote():
    os.kill(os.getppid(), signal.SIGSTOP)
    return 1

def die(code):
    os._exit(code)

def ping(x):
    return x + 1
"""
NAMES = ["keep", "recall", "reach_zygote", "kill_zygote", "stop_zygote", "die", "ping"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return sandbox.prepare_root(tmp_path_factory.mktemp("zyroot") / "root")


@pytest.fixture
def student(root, tmp_path):
    job = {"sandbox_root": str(root), "log": str(tmp_path / "student.log"), "cwd": str(tmp_path),
           "prelude": ["import torch"], "cells": [{"id": 0, "source": PROBES, "exercise": None}], "names": NAMES,
           "call_seconds": 5, "cell_seconds": 10, "memory_gb": 4.0, "cpu_seconds": 120, "scratch_mb": 32,
           "threads": 1}
    proc = remote.StudentProcess(job, tmp_path / "events.jsonl")
    proc.start()
    yield proc, {n: proc.function(n) for n in NAMES}
    proc.stop()


def test_after_a_hidden_test_nothing_of_the_old_process_remains(student):
    proc, f = student
    proc.hidden = True
    assert f["keep"](41) == 1
    proc.end_hidden()
    found, others = f["recall"]()
    assert found == [] and others == 0, (found, others)
    assert (proc.starts, proc.respawns) == (1, 1)  # the zygote forked it: no new sandbox


def test_the_zygote_cannot_be_read_traced_or_signalled(student):
    proc, f = student
    reached = f["reach_zygote"]()
    assert reached == {"mem": "PermissionError", "environ": "PermissionError", "maps": "PermissionError",
                       "fd": "PermissionError", "ptrace": "refused"}, reached
    proc.restart()
    assert f["ping"](1) == 2 and (proc.starts, proc.respawns) == (1, 1)  # still there, still forking


@pytest.mark.parametrize("attack", ["kill_zygote", "stop_zygote"])
def test_a_zygote_gone_or_stopped_costs_a_new_sandbox(student, attack):
    proc, f = student
    f[attack]()
    t0 = time.time()
    proc.restart()
    assert f["ping"](1) == 2 and proc.starts == 2, proc.starts
    assert time.time() - t0 < 30


def test_a_crash_is_reported_at_once_with_its_status(student):
    proc, f = student
    t0 = time.time()
    with pytest.raises(remote.StudentCrashed, match="status 3"):
        f["die"](3)
    assert time.time() - t0 < 3  # not the call's time limit of 5 s
    assert f["ping"](1) == 2 and (proc.starts, proc.respawns) == (1, 1)
    log = Path(proc.events).read_text()
    assert '"crashed"' in log and "status 3" in log
