"""The OS-level sandbox the student's process runs in (bubblewrap, from Debian's ``bubblewrap``).

What the student's process gets:
- its own PID, network, IPC and UTS namespaces: it sees no other process and has no network;
- the user ``nobody`` (uid 65534, every capability dropped, ``no_new_privs``): ``setpriv`` switches
  to it inside the sandbox, so even a way out of the mount namespace finds an unprivileged user;
- read-only: the system libraries, the Python installation and its virtual environment, and
  ``/grader`` (the student-side server and a copy of the helper package without the answer key
  and without the training plumbing, see ``STUDENT_MODULES``). Nothing else of this machine is
  visible: not the repository, ``solutions/``, the gradebook, the submissions or other workspaces;
- one writable place, a size-capped tmpfs at ``/tmp`` (also HOME and the working directory), and a
  private ``/dev/shm``; both vanish with the sandbox, and the sandbox's zygote empties them before it
  forks a fresh student's process (autograder/sandboxed/student_server.py ``Zygote``);
- limits on address space, CPU seconds, processes and file size; ``--die-with-parent`` and the PID
  namespace end every process it started when it ends.

``no_sandbox=True`` (the grader's ``--no-sandbox``) runs the same server as a plain child process
with the same resource limits: no isolation, and every report says so. As root it runs as the worker's
uid, with ``student_area()``'s student-safe copy on its path and an empty private HOME as its working
folder; the grader keeps everything else of its own unreadable to that uid (autograder/grade.py).
"""
from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import sys
from pathlib import Path

from . import limits

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# helper modules a student's code may import in the sandbox: no answer key (reference), no training
# plumbing that computes an exercise's quantity on the way (rollout, rewards)
STUDENT_MODULES = ("__init__", "config", "paths", "checks", "cafe", "problems", "plots", "model")
NOBODY = 65534
SETPRIV = "/usr/bin/setpriv"
INSTALL_HINT = ("the sandbox tool bubblewrap (`bwrap`) is not installed: `bash scripts/course.sh setup` installs it "
                "(Debian/Ubuntu: `apt-get install bubblewrap`); or pass --no-sandbox to grade without isolation")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def check_available() -> None:
    """Raise RuntimeError with the install hint when bubblewrap is missing or cannot start a sandbox."""
    import subprocess

    tool = bwrap_path()
    if tool is None:
        raise RuntimeError(INSTALL_HINT)
    probe = subprocess.run([tool, "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        raise RuntimeError(f"bubblewrap cannot start a sandbox here ({probe.stderr.decode(errors='replace').strip()}); "
                           "grade as root, or pass --no-sandbox to grade without isolation")


def prepare_root(dest: Path) -> Path:
    """Lay out what the sandbox mounts at /grader: the server, the protocol and the allowed helper modules."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("protocol.py", "student_server.py"):
        shutil.copy(HERE / "sandboxed" / name, dest / name)
    pkg = dest / "rlcourse"
    pkg.mkdir(exist_ok=True)
    for module in STUDENT_MODULES:
        src = REPO / "rlcourse" / f"{module}.py"
        if src.exists():
            shutil.copy(src, pkg / f"{module}.py")
    # matplotlib's font list, built once here so the student's process need not build it every time
    import subprocess

    mpl = dest / "mpl"
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={**os.environ, "MPLCONFIGDIR": str(mpl)},
                   capture_output=True, timeout=300)
    for p in [dest, pkg, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def open_to_others(path: Path) -> bool:
    """Whether another user can reach ``path``: every folder above it searchable, and it readable (a file) or
    searchable (a folder)."""
    import stat

    try:
        want = stat.S_IXOTH if path.is_dir() else stat.S_IROTH
        if not path.stat().st_mode & want:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
    except OSError:
        return False


def interpreter_files() -> list[Path]:
    """What the student's process must read: the interpreter, its shared library, the standard library and the
    packages the server imports (found, not imported)."""
    import importlib.util
    import sysconfig

    files = [Path(sys.executable).resolve(), Path(os.__file__)]
    lib, libdir = sysconfig.get_config_var("LDLIBRARY"), sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and lib and libdir:
        files.append(Path(libdir) / lib)
    for name in ("torch", "IPython", "numpy"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            files.append(Path(spec.origin))
    return files


def unprivileged_problem() -> str | None:
    """As root, why ``--no-sandbox`` cannot run the student's process as an unprivileged uid here (None when it
    can, or when the grader is not root: then the student's code runs as the grader's own user)."""
    if os.geteuid() != 0:
        return None
    if not os.path.exists(SETPRIV):
        return f"{SETPRIV} (util-linux) is missing, so the student's code cannot run as an unprivileged user"
    hidden = next((p for p in interpreter_files() if not open_to_others(p)), None)
    if hidden is not None:
        return (f"the student's code must run as an unprivileged user, who cannot read this Python environment "
                f"({hidden}): put the virtual environment, and the Python it is made from, where every user can "
                "read it (e.g. `/usr/bin/python3 -m venv /opt/rlcourse-venv`, then install the course there), "
                "or grade in the sandbox")
    return None


SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")


def clear_user_files(uid: int) -> None:
    """As root, without the sandbox: remove what ``uid`` left in the folders every user may write to, so that a
    restarted student's process finds nothing an earlier one kept there (a hidden test's inputs)."""
    import stat

    if os.geteuid() != 0 or uid == 0:
        return
    for top in SHARED_WRITABLE:
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_uid != uid:
                    continue
                try:
                    if stat.S_ISDIR(st.st_mode):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                except OSError:
                    pass
            # only folders others may write to can hold the uid's files
            dirs[:] = [d for d in dirs if _shared(os.path.join(folder, d))]


def _shared(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return os.path.isdir(path) and not os.path.islink(path) and bool(st.st_mode & 0o002)


def student_area() -> Path:
    """Where ``--no-sandbox`` puts what the student's user may reach: a folder others can pass through but not
    list, for the student-safe copy (``grader/``, see ``prepare_root``) and one private HOME per uid."""
    import tempfile

    area = Path(tempfile.mkdtemp(prefix="rlgrade-student-"))
    area.chmod(0o711)
    if not open_to_others(area):
        shutil.rmtree(area)
        raise RuntimeError(f"the student's user cannot reach {area.parent} (the temporary folder): set TMPDIR to a "
                           "folder every user can pass through, such as /tmp")
    return area


def _fresh_home(home: Path, uid: int) -> None:
    """An empty HOME and working folder for the student's user, private to it (nothing of an earlier start)."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(home, uid, uid)


def _parents(path: Path) -> list[str]:
    return [str(p) for p in reversed(path.parents) if str(p) != "/"]


def command(root: Path, scratch_mb: int = 256, threads: int = 1, no_sandbox: bool = False,
            uid: int = NOBODY) -> tuple[list[str], dict]:
    """argv and environment that start the student server in the sandbox, as ``uid`` (the grader gives
    each parallel worker its own, so the process-count limit of one student cannot starve another)."""
    python = Path(sys.executable)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": "/grader", "PYTHONDONTWRITEBYTECODE": "1",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/.mpl", "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore", "LANG": "C.UTF-8", "NBGRADER_EXECUTION": "autograde",
           "USER": "student", "LOGNAME": "student"}
    if no_sandbox:  # no namespaces; as root, at least another user than the grader's, in a folder of its own
        home = root.parent / f"home-{int(uid)}"  # one per worker's uid: parallel workers share no writable folder
        _fresh_home(home, int(uid))
        env.update(PYTHONPATH=str(root), HOME=str(home), MPLCONFIGDIR=str(home / ".mpl"))
        if os.geteuid() != 0:  # the grader's own user: no other to run as
            return [str(python), str(root / "student_server.py")], env
        problem = unprivileged_problem() or (None if open_to_others(root / "student_server.py") else
                                             f"{root} cannot be read by other users")
        if problem:  # never the student's code as root
            raise RuntimeError(f"cannot start the student's process without the sandbox: {problem}")
        drop = [SETPRIV, f"--reuid={int(uid)}", f"--regid={int(uid)}", "--clear-groups", "--inh-caps=-all",
                "--no-new-privs"]
        return drop + [str(python), str(root / "student_server.py")], env
    args = [bwrap_path(), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    for system in ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"):
        if os.path.exists(system):
            args += ["--ro-bind", system, system] if not os.path.islink(system) else ["--symlink", os.readlink(system), system]
    for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf"):
        if os.path.exists(etc):
            args += ["--ro-bind", etc, etc]
    if os.path.isdir("/sys/devices/system/cpu"):
        args += ["--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    # the scratch first: a Python environment that lives under /tmp (a clone there) is bound on top of it
    args += ["--size", str(scratch_mb * 2**20), "--perms", "1777", "--tmpfs", "/tmp"]
    made = set()
    prefixes = sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.prefix), python.parent.parent})
    for prefix in prefixes:
        if str(prefix).startswith(("/usr/", "/bin/", "/lib/")):
            continue
        for parent in _parents(prefix):
            if parent not in made and parent != "/tmp" and \
                    not any(parent.startswith(s + "/") or parent == s for s in ("/usr", "/lib", "/bin")):
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", str(prefix), str(prefix)]
    bound = ["/usr", "/lib", "/lib64", "/bin", "/sbin", *map(str, prefixes)]
    masked = [h for h in must_not_see() if any(str(h) == b or str(h).startswith(b + "/") for b in bound)]
    for hidden in masked:
        args += ["--tmpfs", str(hidden)]
    for prefix in prefixes:  # the environment itself stays visible, even where it lives inside the course
        if any(str(prefix).startswith(str(h) + "/") for h in masked):
            args += ["--ro-bind", str(prefix), str(prefix)]
    args += ["--ro-bind", str(root), "/grader", "--proc", "/proc", "--dev", "/dev",
             "--size", str(64 * 2**20), "--perms", "1777", "--tmpfs", "/dev/shm",
             "--chdir", "/tmp", "--",
             SETPRIV, f"--reuid={int(uid)}", f"--regid={int(uid)}", "--clear-groups", "--bounding-set=-all",
             "--inh-caps=-all", "--no-new-privs",
             str(python), "/grader/student_server.py"]
    return args, env


def end_group(proc) -> int:
    """Kill a process started in a session of its own, with every process of its group, and close its pipes;
    its exit status."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    code = proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass
    return code


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that started it ends (a killed batch leaves nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def must_not_see() -> list[Path]:
    """The course (its solutions and answer key) and installed copies of the package: hidden even where
    they lie under a folder the sandbox mounts (a course cloned under /usr, a non-editable install)."""
    import site

    paths = [REPO]
    for sp in site.getsitepackages():
        if (Path(sp) / "rlcourse").is_dir():
            paths.append(Path(sp) / "rlcourse")
    return paths


class Cgroup:
    """Memory and process-count limits for the sandbox as a whole (its processes together), where this
    machine lets the grader make a control group (cgroup v1 or v2, as root); otherwise nothing, and
    the per-process limits of ``limiter`` remain."""

    PREFIX = "rlcourse-"   # names are rlcourse-<the grader kernel's pid>-<start>

    def __init__(self, name: str, memory_bytes: int, pids: int):
        self.dirs: list[Path] = []
        wanted = {"memory": {"memory.limit_in_bytes": memory_bytes, "memory.max": memory_bytes},
                  "pids": {"pids.max": pids}}
        for parent, controller in self._parents():
            files = wanted.get(controller) or {k: v for files in wanted.values() for k, v in files.items()}
            self._make(parent / name, files)

    @classmethod
    def confine_self(cls, name: str, memory_bytes: int, pids: int = 4096) -> "Cgroup":
        """Move this process into a group of its own (the grader's kernel: its memory bound). Past the bound
        the kernel is killed, and the grader counts that as its own fault, never the student's. The groups
        this process makes afterwards (its student's) are made beside it, not inside it."""
        cls._parents()  # where they go is fixed now, before the move
        group = cls(name, memory_bytes, pids)
        group.enter()
        return group

    def peak_mb(self) -> float | None:
        """The most memory the group's processes have held at once since it was made (MB), where it is known."""
        for d in self.dirs:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                try:
                    return int((d / name).read_text()) / 2**20
                except (OSError, ValueError):
                    pass
        return None

    def processes(self) -> list[int] | None:
        """The processes in the group now (None where the machine gave no group)."""
        for d in self.dirs:
            try:
                return [int(p) for p in (d / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pass
        return None

    def leave(self) -> None:
        """Move this process back to the group it came from and remove its own (empty now)."""
        for d in self.dirs:
            try:
                (d.parent / "cgroup.procs").write_text(str(os.getpid()))
                d.rmdir()
            except OSError:
                pass
        self.dirs = []

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def _parents() -> list[tuple[Path, str]]:
        """Where this process may make its groups: (folder, controller; "" for cgroup v2), as it was when
        first asked (a kernel that moved into its own group still makes its student's beside it)."""
        try:
            own = {}
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    own[c] = path
            if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # cgroup v2 only
                return [(Path("/sys/fs/cgroup") / own.get("", "/").lstrip("/"), "")]
            return [(Path("/sys/fs/cgroup") / c / own.get(c, "/").lstrip("/"), c) for c in ("memory", "pids")
                    if (Path("/sys/fs/cgroup") / c).is_dir()]
        except (OSError, ValueError):
            return []

    @classmethod
    def remove_stale(cls) -> int:
        """Remove the groups a grader that was killed left behind (their kernel's pid is gone), ending any
        process still in them; returns how many. A run calls it before it starts."""
        stale = [d for parent, _ in cls._parents() if parent.is_dir() for d in parent.glob(f"{cls.PREFIX}*-*")
                 if (pid := d.name[len(cls.PREFIX):].split("-")[0]).isdigit() and not Path(f"/proc/{pid}").exists()]
        _end_and_remove(stale)
        return len(stale)

    def _make(self, path: Path, files: dict) -> None:
        try:
            path.mkdir()
        except OSError:
            return
        for key, value in files.items():
            try:
                (path / key).write_text(str(value))
            except OSError:
                pass
        self.dirs.append(path)

    def enter(self) -> None:
        """In the child, before exec: move this process (and so all it starts) into the groups."""
        for d in self.dirs:
            try:
                (d / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass

    def remove(self) -> None:
        """End every process left in the groups (without the sandbox's PID namespace, a daemon that left the
        process group would outlive its student and meet the next), then remove them."""
        _end_and_remove(self.dirs)
        self.dirs = []


def _end_and_remove(dirs: list[Path]) -> None:
    """Kill every process in each control group, then remove the group (it can be removed once empty)."""
    import time

    for d in dirs:
        for _ in range(50):
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def limiter(memory_gb: float, cpu_seconds: int, processes: int = limits.PROCESSES, file_mb: int = 64,
            cgroup: Cgroup | None = None):
    """preexec_fn for the sandbox: its own session and resource limits (inherited by everything inside)."""
    def apply():
        os.setsid()
        die_with_parent()
        if cgroup is not None:
            cgroup.enter()
        limits = [(resource.RLIMIT_CPU, cpu_seconds), (resource.RLIMIT_FSIZE, file_mb * 2**20),
                  (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, processes)]
        if memory_gb:
            limits.append((resource.RLIMIT_AS, int(memory_gb * 2**30)))
        for which, value in limits:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass
    return apply
