"""environment.yml describes the same environment as pyproject.toml; the reduced-mode switch."""
import re
import tomllib

import yaml

from rlcourse import config
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r): r for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared.update({_name(r): r for r in extra})
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r): r for r in pip if not r.startswith("-e")}
    assert set(listed) == set(declared), set(listed) ^ set(declared)
    for name, req in listed.items():
        if name == "torch":  # pinned locally; the package declares the range Colab satisfies
            assert req == "torch==2.13.0" and declared[name].startswith("torch>=")
        else:
            assert req.replace(" ", "") == declared[name].replace(" ", ""), name
    assert "-e ." in pip
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11"


def test_constraints_pin_torch_and_fit_the_ranges():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    pins = {}
    for line in (ROOT / "scripts/constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    assert pins["torch"] == "2.13.0"
    for req in reqs:
        assert req.specifier.contains(pins[req.name.lower()]), req


def test_reduced_mode_switch(monkeypatch):
    monkeypatch.delenv("RLCOURSE_REDUCED", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert not config.reduced_mode() and config.pick(100, 2) == 100
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert config.reduced_mode() and config.pick(100, 2) == 2
    monkeypatch.setenv("RLCOURSE_REDUCED", "0")
    assert not config.reduced_mode()
    monkeypatch.delenv("NBGRADER_EXECUTION")
    monkeypatch.setenv("RLCOURSE_REDUCED", "1")
    assert config.reduced_mode()
