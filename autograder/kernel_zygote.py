"""The grader's kernels, forked instead of started: one zygote per grading worker.

Every notebook nbgrader grades runs in a new ipykernel, and a new kernel spends most of its start importing
torch, IPython and pyplot (about 1.5 s of CPU, for each notebook of each student). The worker
(autograder/worker.py) therefore starts ``python -m autograder.kernel_zygote`` once: a process that imports
them and waits. For each notebook, ``ForkedKernelManager`` (the kernel manager nbgrader's executor uses, set
in ``worker.nbgrader_config``) asks the zygote for a kernel; the zygote forks, and the child becomes the
ipykernel that jupyter_client would have started, with the same command line, environment and working
folder. The kernel is the grader's own process, as before: no student's code runs in it or in the zygote
(the student's code runs in the sandbox, autograder/remote.py), so a fork shares nothing a student made.

Where the zygote cannot serve (not started, gone, a kernel command other than ipykernel's), the kernel is
started as jupyter_client starts it.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys

from jupyter_client.manager import AsyncKernelManager

LAUNCHER = ["-m", "ipykernel_launcher"]  # what follows the interpreter in ipykernel's kernelspec


class ForkedKernel:
    """A kernel the zygote forked, seen from the worker as jupyter_client sees a ``Popen``: its pid, ``poll``,
    ``wait``, ``send_signal``, ``kill`` and ``terminate`` (through a pidfd, so a reused pid is never hit)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None
        self.pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self.pidfd], [], [], 0)[0]:
            self.returncode = 0  # the zygote reaps it; the status stays there
            os.close(self.pidfd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self.pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(["kernel"], timeout)
            self.poll()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class KernelZygote:
    """The worker's side: start the zygote, ask it for kernels."""

    def __init__(self):
        self.proc = None

    def start(self, log) -> None:
        from . import sandbox

        self.proc = subprocess.Popen([sys.executable, "-m", "autograder.kernel_zygote"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, preexec_fn=sandbox.die_with_parent)

    def fork(self, argv: list, env: dict, cwd: str | None) -> ForkedKernel | None:
        """A kernel running ``argv`` (ipykernel's command line) in ``env`` and ``cwd``; None where the zygote
        cannot give one (the caller then starts the kernel itself)."""
        if self.proc is None or self.proc.poll() is not None or list(argv[1:3]) != LAUNCHER or \
                os.path.realpath(argv[0]) != os.path.realpath(sys.executable):
            return None
        try:
            self.proc.stdin.write(json.dumps({"argv": list(argv[3:]), "env": dict(env), "cwd": cwd}).encode() + b"\n")
            self.proc.stdin.flush()
            if not select.select([self.proc.stdout], [], [], 30)[0]:
                return None
            reply = json.loads(self.proc.stdout.readline() or b"{}")
            return ForkedKernel(int(reply["pid"])) if "pid" in reply else None
        except (OSError, ValueError, KeyError):
            return None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


ZYGOTE = KernelZygote()  # the worker's one (worker.serve starts it)


class ForkedKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, with the kernel forked by the worker's zygote where it can be."""

    async def _async_launch_kernel(self, kernel_cmd: list, **kw) -> None:
        kernel = ZYGOTE.fork(kernel_cmd, kw.get("env") or dict(os.environ), kw.get("cwd"))
        if kernel is None:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        p = self.provisioner  # a LocalProvisioner, as for any kernel started from ipykernel's kernelspec
        p.process, p.pid, p.pgid, p.cwd = kernel, kernel.pid, None, kw.get("cwd")
        self._reconcile_connection_info(p.connection_info)


# ----------------------------------------------------------------------------- the zygote itself
def _become_kernel(request: dict) -> None:
    """In the forked child: the ipykernel of ``python -m ipykernel_launcher ARGS`` (it returns when the kernel
    shuts down)."""
    os.environ.clear()
    os.environ.update(request["env"])
    if request.get("cwd"):
        os.chdir(request["cwd"])
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # the zygote's stdout is its reply pipe; stderr stays the worker's log
    sys.argv = ["ipykernel_launcher", *request["argv"]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def main() -> None:
    import atexit

    os.environ.setdefault("MPLBACKEND", "Agg")
    # what every kernel imports: the kernel, torch (the tests' tensors), pyplot (the notebooks' setup)
    import ipykernel.ipkernel  # noqa: F401
    import torch  # noqa: F401
    from ipykernel import kernelapp  # noqa: F401

    try:
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        pass
    from . import sandbox

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels that end are reaped at once
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setpgid(0, 0)  # a group of its own, as jupyter_client gives its kernels
                sandbox.die_with_parent()
                _become_kernel(request)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - a kernel that failed to start: jupyter_client sees it end
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                atexit._run_exitfuncs()  # the kernel's own (autograder/kernel.py writes peak memory there)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)  # the reply, on stdout (the child's is /dev/null)


if __name__ == "__main__":
    main()
