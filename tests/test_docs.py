"""Every command in README.md and CONTRIBUTING.md runs as written.

Commands are read from the files: each line of a fenced ``bash`` block, and each inline code span
that starts with ``bash scripts/``, ``.venv/bin/python`` or ``python``. Each one is checked:

- the script or module it names is tracked by git (so it is there on a clean clone);
- ``bash scripts/course.sh <command>``: the command is one that course.sh knows; ``update`` runs for
  real (into a temporary workspace), ``lab``, ``test`` and ``grade`` run with ``--help`` (their own
  set-up steps included: ``lab --help`` creates the temporary workspace and its Jupyter configuration);
- ``.venv/bin/python <script>`` and ``.venv/bin/python -m <module>``: ``--help`` works;
- ``conda ...``: environment.yml is there and names the environment that is activated;
- a bare ``python ...`` fails the test: plain ``python3`` has no nbgrader or torch, say ``.venv/bin/python``.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest
import yaml
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
DOCS = ("README.md", "CONTRIBUTING.md")
FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`((?:bash scripts/|\.venv/bin/python |python3? )[^`]+)`")
PLACEHOLDER = re.compile(r"\[[^\]]*\]")  # "[--pretrain]", "[--out DIR]": optional parts


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for each distinct command, in the order the files give them."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for block in FENCE.findall(text):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                if line and not line.startswith("#"):
                    found.append((doc, line))
        for span in INLINE.findall(FENCE.sub("", text)):
            found.append((doc, " ".join(span.split())))
    seen, unique = set(), []
    for doc, command in found:
        if command not in seen:
            seen.add(command)
            unique.append((doc, command))
    return unique


COMMANDS = documented_commands()


def tracked(path: str) -> bool:
    return subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT, capture_output=True).returncode == 0


def course_sh_commands() -> set[str]:
    text = (ROOT / "scripts" / "course.sh").read_text()
    return {c for group in re.findall(r"^  ([a-z|\-]+)\)", text, re.MULTILINE) for c in group.split("|")}


def run(argv: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_docs_have_commands():
    assert any(cmd.startswith("bash scripts/course.sh lab") for _, cmd in COMMANDS)
    assert any(cmd.startswith("bash scripts/course.sh update") for _, cmd in COMMANDS)


@pytest.mark.parametrize("doc,command", COMMANDS, ids=[f"{d}:{c[:50]}" for d, c in COMMANDS])
def test_documented_command_works(doc, command, tmp_path):
    words = shlex.split(PLACEHOLDER.sub("", command))
    env = dict(os.environ, RLCOURSE_WORKSPACE=str(tmp_path / "workspace"))
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        name, value = words.pop(0).split("=", 1)
        if name != "RLCOURSE_VENV":  # RLCOURSE_VENV="$CONDA_PREFIX": the conda path, checked below
            env[name] = value
    assert words, command
    program, args = words[0], words[1:]

    if program in ("python", "python3"):
        pytest.fail(f"{doc}: `{command}` needs the course environment: write `.venv/bin/python ...`")
    if program == "conda":
        env_file = ROOT / "environment.yml"
        assert tracked("environment.yml")
        if args[:2] == ["env", "create"]:
            assert args[args.index("-f") + 1] == "environment.yml"
        elif args[:1] == ["activate"]:
            assert args[1] == yaml.safe_load(env_file.read_text())["name"], f"{doc}: `{command}` names another environment"
        else:
            pytest.fail(f"{doc}: no check for `{command}`")
        return
    if program == "bash":
        script = args[0]
        assert tracked(script), f"{doc}: {script} is not in the repository"
        if script != "scripts/course.sh":
            assert os.access(ROOT / script, os.R_OK)
            return
        sub = args[1] if len(args) > 1 else "lab"
        assert sub in course_sh_commands(), f"{doc}: course.sh has no command {sub!r}"
        if sub == "update":
            argv = ["bash", script, "update"]
        elif sub in ("help", "setup"):
            argv = ["bash", script, sub]
        else:
            argv = ["bash", script, sub, "--help"]
        result = run(argv, env)
        assert result.returncode == 0, f"{doc}: `{' '.join(argv)}` failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if sub in ("lab", "update"):
            assert (tmp_path / "workspace" / ".release.json").is_file(), f"`{command}` made no workspace"
        return
    if program == ".venv/bin/python":
        if args[0] == "-m":
            module = args[1]
            path = module.replace(".", "/")
            assert tracked(path + ".py") or tracked(path + "/__main__.py"), f"{doc}: no module {module}"
            argv = [program, "-m", module, "--help"]
        else:
            assert tracked(args[0]), f"{doc}: {args[0]} is not in the repository"
            argv = [program, args[0], "--help"]
        result = run(argv, env, timeout=300)
        assert result.returncode == 0, f"{doc}: `{' '.join(argv)}` failed:\n{result.stderr[-2000:]}"
        return
    pytest.fail(f"{doc}: no check for `{command}`: add one to tests/test_docs.py")


def test_environment_yml_ends_with_the_command_that_starts_the_course():
    text = (ROOT / "environment.yml").read_text().rstrip().splitlines()
    assert "bash scripts/course.sh lab" in text[-1]
    readme = (ROOT / "README.md").read_text()
    conda = next(block for block in FENCE.findall(readme) if "conda env create" in block)
    assert conda.strip().splitlines()[-1].endswith("bash scripts/course.sh lab")
