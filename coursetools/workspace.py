"""The student's workspace: their own copy of the release, and course updates that never overwrite their work.

    python -m coursetools.workspace update     # bring new and updated release notebooks into the workspace
    python -m coursetools.workspace status     # say what `update` would do, change nothing
    python -m coursetools.workspace lab        # what `bash scripts/course.sh lab` runs before JupyterLab starts

The release (``notebooks/``, tracked by git) is never opened by the student. The workspace
(``workspace/`` by default, ignored by git, ``RLCOURSE_WORKSPACE`` or ``--workspace`` to move it) is
created on the first run as a copy of the release. Its manifest ``workspace/.release.json`` records,
for every file copied, the sha256 of the release file it came from and a digest of what was copied.

An update compares the release with the manifest, file by file:

- a file new in the release (or deleted from the workspace) is copied in;
- a file whose release did not change is left as it is;
- a file whose release changed is replaced only if the student has not touched it; a notebook counts
  as touched once its cells differ from the copy (sources, cell types or outputs: running it counts);
  the notebook metadata that Jupyter rewrites on opening (kernelspec, language_info) does not count;
- a touched file whose release changed stays as it is, and the new release goes beside it as
  ``<name>.new.ipynb`` (``<name>.new-2.ipynb``, ... when the student has edited that one too).

Nothing the student wrote is ever overwritten: a file is replaced only when its digest still equals
the digest recorded when the course wrote it.

``lab`` also writes the workspace's Jupyter configuration (``workspace/.jupyter``, put first on
``JUPYTER_CONFIG_PATH`` by scripts/course.sh): nbgrader's instructor tools (Create Assignment, Formgrader,
Course List) are disabled with ``jupyter labextension disable``/``lock`` and their server extensions
switched off; Validate and the Assignment List stay. JupyterLab's announcements plugin is disabled the
same way (not locked), so a student is not greeted by "Would you like to get notified about official
Jupyter news?" and the lab makes no news or update requests; JupyterLab documents this
(``jupyter labextension disable "@jupyterlab/apputils-extension:announcements"``, its "Announcements"
page): its ``fetchNews`` setting could only be set for the whole installation (``overrides.json`` in
``.venv/share/jupyter/lab/settings``) or in the user's own settings. An instructor who runs
``.venv/bin/jupyter lab`` directly keeps every tool: nothing outside the workspace changes.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rlcourse.paths import REPO_ROOT

from . import layout
from .kernels import kernel_manager_config

RELEASE_DIR = REPO_ROOT / layout.RELEASE_DIR
MANIFEST = ".release.json"
JUPYTER_DIR = ".jupyter"
FORMAT = 1

# nbgrader's JupyterLab plugins that only an instructor needs, and their server extensions
INSTRUCTOR_PLUGINS = ("@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                      "@jupyter/nbgrader:course-list")
INSTRUCTOR_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
STUDENT_PLUGINS = ("@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:validate-assignment",
                   "@jupyter/nbgrader:menu")
# JupyterLab's news and update check: its first toast asks "Would you like to get notified about official
# Jupyter news?"; disabled (not locked: a student may turn it back on in the Plugin Manager)
QUIET_PLUGINS = ("@jupyterlab/apputils-extension:announcements",)


def default_workspace() -> Path:
    return Path(os.environ.get("RLCOURSE_WORKSPACE") or REPO_ROOT / "workspace").expanduser().resolve()


# ----------------------------------------------------------------------------- digests
def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def content_digest(path: Path) -> str:
    """What the student could have changed: for a notebook, its cells (type, source, outputs).

    Cell ids, cell metadata, execution counts and the notebook metadata are left out: Jupyter
    rewrites them on its own (opening a notebook sets its kernelspec and language_info). Any other
    file, or a notebook that is not valid JSON, is digested byte for byte.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
            cells = [{"cell_type": c.get("cell_type"), "source": _text(c.get("source", "")),
                      "outputs": c.get("outputs", [])} for c in nb["cells"]]
            raw = json.dumps(cells, sort_keys=True, ensure_ascii=False).encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return hashlib.sha256(raw).hexdigest()


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


# ----------------------------------------------------------------------------- the manifest
def load_manifest(workspace: Path) -> dict:
    path = Path(workspace) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "files": {}}
    data = json.loads(path.read_text())
    data.setdefault("files", {})
    return data


def save_manifest(workspace: Path, manifest: dict) -> None:
    _write_atomic(Path(workspace) / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".rlcourse-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def release_files(release: Path) -> list[str]:
    """Every file of the release as a relative POSIX path (hidden files and checkpoints left out)."""
    release = Path(release)
    found = []
    for path in sorted(release.rglob("*")):
        rel = path.relative_to(release)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            found.append(rel.as_posix())
    return found


def new_version_name(rel: str, n: int = 1) -> str:
    """``02_policy_gradients/02_policy_gradients.ipynb`` -> ``.../02_policy_gradients.new.ipynb`` (n=1), ``.new-2.ipynb``."""
    path = Path(rel)
    tag = ".new" if n == 1 else f".new-{n}"
    return path.with_name(path.stem + tag + path.suffix).as_posix()


def for_this_python(data: bytes) -> bytes:
    """A release notebook with the Python version in its language_info, as the kernel will report it.

    JupyterLab writes the kernel's language_info into a notebook when it opens it; when that differs
    from the file, the notebook is marked modified at once. The release cannot know the learner's
    Python, so the copy in the workspace gets it here (cell contents are untouched).
    """
    try:
        nb = json.loads(data)
        info = nb.setdefault("metadata", {}).setdefault("language_info", {"name": "python"})
    except (ValueError, AttributeError):
        return data
    if info.get("name") != "python":
        return data
    info["version"] = sys.version.split()[0]
    return (json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def trust(path: Path) -> None:
    """Mark a notebook the course wrote as trusted (Jupyter's own signature store), as `jupyter trust` does."""
    try:
        from nbformat import read
        from nbformat.sign import NotebookNotary

        NotebookNotary().sign(read(str(path), as_version=4))
    except Exception:  # noqa: BLE001 - trust only spares a log line; never fail a copy for it
        pass


# ----------------------------------------------------------------------------- the update
@dataclass
class Report:
    added: list[str] = field(default_factory=list)       # new in the release: copied
    restored: list[str] = field(default_factory=list)    # deleted from the workspace: copied again
    updated: list[str] = field(default_factory=list)     # untouched, release changed: replaced
    kept: list[tuple[str, str]] = field(default_factory=list)  # (touched file, where its new release went)
    waiting: list[tuple[str, str]] = field(default_factory=list)  # new release already beside it
    unchanged: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)     # gone from the release: left in the workspace

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.restored) + len(self.updated) + len(self.kept)

    def lines(self, workspace: Path, dry_run: bool = False) -> list[str]:
        will = "would " if dry_run else ""
        out = []
        for rel in self.added:
            out.append(f"{will}add       {rel}")
        for rel in self.restored:
            out.append(f"{will}restore   {rel}  (it was deleted from the workspace)")
        for rel in self.updated:
            out.append(f"{will}update    {rel}  (you had not changed it)")
        for rel, new in self.kept:
            out.append(f"{will}keep      {rel}  (you changed it; the new release {'would go' if dry_run else 'is'} "
                       f"in {new})")
        for rel, new in self.waiting:
            out.append(f"kept      {rel}  (you changed it; the new release is waiting in {new})")
        for rel in self.retired:
            out.append(f"left      {rel}  (no longer in the release)")
        if not out:
            out.append(f"{workspace} is up to date with the release ({len(self.unchanged)} files).")
        return out


def update(workspace: Path | None = None, release: Path | None = None, dry_run: bool = False) -> Report:
    """Bring ``release`` into ``workspace`` (created if missing) without overwriting anything the student changed."""
    workspace = Path(workspace or default_workspace())
    release = Path(release or RELEASE_DIR)
    if not release.is_dir():
        raise FileNotFoundError(f"no release folder {release}: run `.venv/bin/python scripts/release.py`")
    manifest = load_manifest(workspace)
    files = manifest["files"]
    report = Report()
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()

    def copy_in(rel: str, target_rel: str | None = None) -> dict:
        """Copy the release file ``rel`` to ``target_rel`` (default: the same path); returns its record."""
        data = (release / rel).read_bytes()
        target = workspace / (target_rel or rel)
        if not dry_run:
            _write_atomic(target, for_this_python(data) if rel.endswith(".ipynb") else data)
            if rel.endswith(".ipynb"):
                trust(target)
        return {"release_sha256": hashlib.sha256(data).hexdigest(),
                "digest": content_digest(release / rel), "copied": now}

    for rel in release_files(release):
        source_sha = sha256_file(release / rel)
        target = workspace / rel
        entry = files.get(rel)
        if not target.exists():
            (report.restored if entry else report.added).append(rel)
            record = copy_in(rel)
            if entry and entry.get("new_version"):
                record["new_version"] = entry["new_version"]
            files[rel] = record
            continue
        current = content_digest(target)
        if entry is None:  # a file of the same name that the course did not write (or a lost manifest)
            if current == content_digest(release / rel):
                files[rel] = {"release_sha256": source_sha, "digest": current, "copied": now}
                report.unchanged.append(rel)
            else:
                _place_new_version(workspace, release, rel, {}, files, report, copy_in, dry_run)
            continue
        if entry["release_sha256"] == source_sha:
            report.unchanged.append(rel)
            continue
        if current == content_digest(release / rel):  # the student already has this release (e.g. adopted .new)
            entry.update(release_sha256=source_sha, digest=current, copied=now)
            entry.pop("new_version", None)
            report.unchanged.append(rel)
        elif current == entry["digest"]:  # untouched since the course wrote it: safe to replace
            files[rel] = copy_in(rel)
            report.updated.append(rel)
        else:
            _place_new_version(workspace, release, rel, entry, files, report, copy_in, dry_run)
    for rel in sorted(set(files) - set(release_files(release))):
        if (workspace / rel).exists():
            report.retired.append(rel)
    if not dry_run:
        manifest["format"] = FORMAT
        manifest["release"] = str(release)
        save_manifest(workspace, manifest)
    return report


def _place_new_version(workspace, release, rel, entry, files, report, copy_in, dry_run) -> None:
    """``rel`` was changed by the student and its release changed: write the release beside it."""
    source_sha = sha256_file(release / rel)
    pending = entry.get("new_version") or {}
    if pending.get("release_sha256") == source_sha and (workspace / pending["path"]).exists():
        report.waiting.append((rel, pending["path"]))
        return
    n = 1
    while True:
        candidate = new_version_name(rel, n)
        path = workspace / candidate
        ours_untouched = (pending.get("path") == candidate and path.exists()
                          and content_digest(path) == pending.get("digest"))
        if not path.exists() or ours_untouched:
            break
        n += 1
    record = copy_in(rel, candidate)
    new_version = {"path": candidate, "release_sha256": record["release_sha256"], "digest": record["digest"],
                   "copied": record["copied"]}
    if entry:
        entry["new_version"] = new_version
    else:  # not ours: remember only the new version, so that the next update does not write another
        files[rel] = {"release_sha256": None, "digest": None, "new_version": new_version}
    report.kept.append((rel, candidate))


# ----------------------------------------------------------------------------- JupyterLab in student mode
NBGRADER_CONFIG = '''\
"""nbgrader in the student's JupyterLab (written by coursetools.workspace; rewritten at every start).

Validate and the Assignment List read this file; the instructor's configuration is autograder/nbgrader_config.py.
This course has no shared exchange: the Assignment List looks in an empty folder of the workspace.
"""
c = get_config()  # noqa: F821 - provided by nbgrader
c.CourseDirectory.course_id = "rl-for-llms"
c.CourseDirectory.root = {root!r}
c.Exchange.root = {exchange!r}
'''


def write_lab_config(workspace: Path | None = None, jupyter: str | None = None) -> Path:
    """Write ``workspace/.jupyter`` (see the module docstring); returns that folder."""
    workspace = Path(workspace or default_workspace())
    config = workspace / JUPYTER_DIR
    config.mkdir(parents=True, exist_ok=True)
    exchange = config / "exchange"
    exchange.mkdir(exist_ok=True)
    (config / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(root=str(workspace), exchange=str(exchange)))
    server = {"ServerApp": {"jpserver_extensions": {name: False for name in INSTRUCTOR_SERVER_EXTENSIONS},
                            # jupyter_server asks for a 90 s ping timeout, tornado caps it at the 30 s
                            # interval and warns on every kernel connection: ask for what tornado allows
                            "tornado_settings": {"ws_ping_timeout": 30000}}}
    server.update(kernel_manager_config())
    (config / "jupyter_server_config.json").write_text(json.dumps(server, indent=2) + "\n")
    page = config / "labconfig" / "page_config.json"
    current = json.loads(page.read_text()) if page.is_file() else {}
    wanted = {"disable": INSTRUCTOR_PLUGINS + QUIET_PLUGINS, "lock": INSTRUCTOR_PLUGINS}
    key = {"disable": "disabledExtensions", "lock": "lockedExtensions"}
    jupyter = jupyter or str(Path(sys.executable).with_name("jupyter"))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config))  # --level=user is this folder
    for action, plugins in wanted.items():
        if not all(current.get(key[action], {}).get(p) for p in plugins):
            subprocess.run([jupyter, "labextension", action, "--level=user", *plugins], env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return config


def prepare_lab(workspace: Path | None = None, release: Path | None = None) -> Path:
    """Create the workspace on the first run (a copy of the release), write its Jupyter configuration,
    and say when the release has changes that ``update`` would bring in. Returns the workspace."""
    workspace = Path(workspace or default_workspace())
    first = not (workspace / MANIFEST).is_file()
    if first:
        report = update(workspace, release)
        print(f"Created your workspace {workspace} with {len(report.added)} files from the release.")
        print("Work there: notebooks/ is the course's copy and is never opened by JupyterLab.")
    else:
        report = update(workspace, release, dry_run=True)
        if report.changes:
            files = "file" if report.changes == 1 else "files"
            print(f"The course has {report.changes} new or updated {files}: run `bash scripts/course.sh update` "
                  "to bring them in (your own changes are kept).")
    write_lab_config(workspace)
    return workspace


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools.workspace", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["update", "status", "lab"],
                        help="update: bring the release in; status: say what update would do; "
                             "lab: create the workspace if needed and write its Jupyter configuration")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="the student's folder (default: $RLCOURSE_WORKSPACE or workspace/)")
    parser.add_argument("--release", type=Path, default=None, help="the release folder (default: notebooks/)")
    args = parser.parse_args(argv)
    workspace = Path(args.workspace or default_workspace()).resolve()
    if args.command == "lab":
        prepare_lab(workspace, args.release)
        return 0
    dry_run = args.command == "status"
    report = update(workspace, args.release, dry_run=dry_run)
    for line in report.lines(workspace, dry_run=dry_run):
        print(line)
    if report.kept and not dry_run:
        print("Your versions were not touched. Compare each with its .new file and copy over what you want;"
              " or delete (or rename) yours and run the update again to get the new release under its own name.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
