"""The grader's kernels, forked by the worker's zygote (autograder/kernel_zygote.py): a forked kernel is the
kernel jupyter_client would have started (its environment, working folder, interrupt, shutdown, exit
handlers), and where the zygote is not running the kernel is started as before."""
from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from autograder import kernel_zygote


async def _session(tmp_path, code: str, interrupt_after: str | None = None) -> dict:
    """Start a kernel with ForkedKernelManager, run ``code`` (which writes facts.json), shut it down; the facts,
    with whether the process is gone after the shutdown."""
    km = kernel_zygote.ForkedKernelManager(kernel_name="python3")
    await km.start_kernel(env={**os.environ, "RLCOURSE_PROBE": "seen"}, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        if interrupt_after is not None:
            kc.execute(interrupt_after)
            await asyncio.sleep(1.0)
            await km.interrupt_kernel()
        await kc.execute_interactive(code, timeout=60)
    finally:
        kc.stop_channels()
        process = km.provisioner.process
        await km.shutdown_kernel(now=False)
    facts = json.loads((tmp_path / "facts.json").read_text())
    facts["ended"] = process.poll() is not None
    return facts


PROBE = ("import json, os, atexit\n"
         "facts = {'ppid': os.getppid(), 'cwd': os.getcwd(), 'env': os.environ.get('RLCOURSE_PROBE'),\n"
         "         'torch_loaded': 'torch' in __import__('sys').modules, 'interrupted': globals().get('interrupted')}\n"
         "json.dump(facts, open('facts.json', 'w'))\n"
         "atexit.register(lambda: open('atexit.txt', 'w').write('ran'))\n")
SLEEP = "import time\ntry:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    interrupted = True\n"


@pytest.fixture
def zygote():
    kernel_zygote.ZYGOTE.start(sys.stderr)
    yield kernel_zygote.ZYGOTE
    kernel_zygote.ZYGOTE.stop()


def test_a_forked_kernel_is_the_kernel_jupyter_would_start(zygote, tmp_path):
    facts = asyncio.run(_session(tmp_path, PROBE, interrupt_after=SLEEP))
    assert facts["ppid"] == zygote.proc.pid  # forked by the zygote, not started
    assert facts["torch_loaded"]  # imported once, in the zygote
    assert (facts["cwd"], facts["env"]) == (str(tmp_path), "seen")
    assert facts["interrupted"] is True  # an interrupt reaches it
    assert facts["ended"] and (tmp_path / "atexit.txt").read_text() == "ran"  # shut down, exit handlers run


def test_without_the_zygote_the_kernel_is_started(tmp_path):
    assert kernel_zygote.ZYGOTE.proc is None
    facts = asyncio.run(_session(tmp_path, PROBE))
    assert facts["ppid"] == os.getpid() and not facts["torch_loaded"]
    assert facts["ended"] and (tmp_path / "atexit.txt").read_text() == "ran"


def test_another_kernel_command_is_not_forked(zygote):
    assert zygote.fork([sys.executable, "-m", "other_kernel", "-f", "x.json"], dict(os.environ), None) is None
    assert zygote.fork(["/usr/bin/python3-other", "-m", "ipykernel_launcher", "-f", "x.json"], {}, None) is None
