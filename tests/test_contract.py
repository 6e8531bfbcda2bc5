"""The exercise contract (COURSE_CONTRACT.md, read by coursetools.contract) against the notebooks and the README.

Every row of the contract is either implemented (an answer cell in its section's notebook, with the
contract's ``def`` line, and a name in the README's exercise table) or listed in PENDING below with
the issue that adds it. The course's copy of the contract equals the shared one where that exists.
"""
from __future__ import annotations

import ast
import re

import pytest

import notebook_harness as H

from coursetools import contract
from rlcourse.paths import REPO_ROOT

# Contract rows that no notebook implements yet, with the issue that adds them. The one list of
# exceptions: a row implemented while still listed here, or listed here but gone from the contract,
# fails test_pending_rows_are_pending; remove a row from this list in the commit that implements it.
PENDING = {
}

SECTIONS = contract.load()
IDS = H.assignment_ids()
SHARED_CONTRACT = REPO_ROOT.parent / "shared" / "COURSE_CONTRACT.md"
README_TABLE_HEADER = "| # | notebook | you implement |"


def implemented(section: str) -> list[str]:
    """The contract's exercises of a section that its notebook must define, in the contract's order."""
    return [e.name for e in SECTIONS.get(section, []) if e.name not in PENDING]


def assignment_of(section: str) -> str | None:
    return next((a for a in IDS if contract.section_id(a) == section), None)


def readme_table() -> dict[str, list[str]]:
    """Section id -> the functions (backticked names) in the README's ``| # | notebook | you implement |`` table."""
    lines = (H.ROOT / "README.md").read_text().splitlines()
    assert README_TABLE_HEADER in lines, f"README.md has no table {README_TABLE_HEADER}"
    table = {}
    for line in lines[lines.index(README_TABLE_HEADER) + 2:]:
        if not line.startswith("|"):
            break
        number, _title, functions = (cell.strip() for cell in line.strip("|").split("|", 2))
        table[number] = re.findall(r"`(\w+)`", functions)
    return table


def def_signature(source: str, name: str) -> tuple[tuple[str, ...], dict]:
    """Argument names and defaults of the top-level ``def name(...)`` in a cell's source."""
    defs = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name]
    assert len(defs) == 1, f"expected one top-level `def {name}(...)`, found {len(defs)}"
    args = defs[0].args
    assert not (args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg), \
        f"`def {name}` should take plain arguments only, as the contract writes them"
    names = tuple(a.arg for a in args.args)
    defaults = {n: ast.literal_eval(d) for n, d in zip(names[len(names) - len(args.defaults):], args.defaults)}
    return names, defaults


# ----------------------------------------------------------------------------- the contract itself
def test_contract_has_every_section():
    assert sorted(SECTIONS) == [f"{i:02d}" for i in range(8)]
    assert all(SECTIONS.values()), "a contract section without exercises"
    names = [e.name for exercises in SECTIONS.values() for e in exercises]
    assert len(names) == len(set(names)), "an exercise name appears twice in the contract"


def test_contract_rows_are_parsed():
    rows = {e.name: e for exercises in SECTIONS.values() for e in exercises}
    sft = rows["sft_loss"]
    assert (sft.section, sft.signature, sft.args, sft.defaults, sft.returns) == \
        ("00", "sft_loss(token_logps, mask)", ("token_logps", "mask"), {}, "scalar")
    assert sft.definition.startswith("`-(sum mask*logps) / (sum mask)`")
    gae = rows["gae_advantages"]
    assert gae.args == ("rewards", "values", "mask", "gamma", "lam") and gae.defaults == {"gamma": 1.0, "lam": 0.95}
    assert rows["score_function_gradient"].defaults == {"generator": None}
    assert rows["completion_mask"].returns == "`(B, T)` float"


def test_repository_contract_equals_the_shared_one():
    if not SHARED_CONTRACT.is_file():
        pytest.skip(f"no shared contract at {SHARED_CONTRACT} (a student's clone has no shared/ folder)")
    assert contract.CONTRACT_FILE.read_bytes() == SHARED_CONTRACT.read_bytes(), \
        f"COURSE_CONTRACT.md differs from {SHARED_CONTRACT}: copy the shared page into the repository"


# ----------------------------------------------------------------------------- pending rows
def test_pending_rows_are_pending():
    rows = {e.name: e.section for exercises in SECTIONS.values() for e in exercises}
    for name, issue in PENDING.items():
        assert name in rows, f"PENDING lists {name} ({issue}), which is not in the contract: remove it from PENDING"
        assignment = assignment_of(rows[name])
        if assignment is not None:
            assert name not in H.exercises(H.load(H.notebook_path(assignment))), \
                f"{assignment} implements {name}: remove it from PENDING ({issue})"


def test_every_section_without_a_notebook_is_pending():
    for section in SECTIONS:
        if assignment_of(section) is None:
            assert not implemented(section), \
                f"no notebook for contract section {section}, yet {implemented(section)} are not in PENDING"


# ----------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize("assignment", IDS)
def test_notebook_defines_exactly_its_contract_exercises(assignment):
    section = contract.section_id(assignment)
    assert section in SECTIONS, f"{assignment}: no section {section} in COURSE_CONTRACT.md"
    found = H.exercises(H.load(H.notebook_path(assignment)))
    assert sorted(found) == sorted(implemented(section)), \
        f"{assignment} defines {sorted(found)}; the contract (less PENDING) asks for {sorted(implemented(section))}"


@pytest.mark.parametrize("release", [False, True], ids=["solutions", "notebooks"])
@pytest.mark.parametrize("assignment", IDS)
def test_answer_cells_have_the_contract_signature(assignment, release):
    rows = {e.name: e for e in SECTIONS.get(contract.section_id(assignment), [])}
    for name, ex in H.exercises(H.load(H.notebook_path(assignment, release=release))).items():
        assert name in rows, f"{assignment}: answer cell {name!r} is not in the contract"
        args, defaults = def_signature(ex.answer.source, name)
        assert (args, defaults) == (rows[name].args, rows[name].defaults), \
            f"{assignment}: `def {name}` takes {args} with defaults {defaults}; the contract: {rows[name].signature}"


# ----------------------------------------------------------------------------- README
def test_readme_table_lists_the_contract():
    table = readme_table()
    sections = sorted(contract.section_id(a) for a in IDS)
    assert sorted(table) == sections, f"the README's exercise table has rows {sorted(table)}; notebooks: {sections}"
    for section in sections:
        assert table[section] == implemented(section), \
            f"README row {section} lists {table[section]}; the contract (less PENDING): {implemented(section)}"


def test_readme_points_to_the_contract_in_the_repository():
    readme = (H.ROOT / "README.md").read_text()
    assert "`COURSE_CONTRACT.md`" in readme and "beside the repository" not in readme
    assert contract.CONTRACT_FILE.is_file()


def test_points_follow_the_difficulty_table():
    """Every exercise's test cells carry contract.POINTS[name], split as contract.split_points says."""
    assert contract.split_points(5, 2) == [2, 3] and contract.split_points(2, 2) == [1, 1]
    assert contract.split_points(4, 3) == [1, 1, 2]
    every = {e.name for rows in SECTIONS.values() for e in rows}
    assert set(contract.POINTS) == every, f"POINTS and the contract differ: {set(contract.POINTS) ^ every}"
    for assignment in IDS:
        nb = H.load(H.notebook_path(assignment))
        cells = {}
        for cell in nb.cells:
            meta = H.nbgrader_meta(cell)
            if meta.get("grade"):
                name = re.sub(r"_hidden\d*$", "", meta["grade_id"][len("test_"):])
                cells.setdefault(name, []).append(meta.get("points"))
        for name, points in cells.items():
            assert points == contract.split_points(contract.POINTS[name], len(points)), \
                f"{assignment}: {name}'s test cells carry {points} points; contract.POINTS says {contract.POINTS[name]}"
