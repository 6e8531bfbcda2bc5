"""The one grading command on a synthetic class of the fixture course (tests/fixtures/course).

One run grades every student below (right, wrong, partial, each bad and each tampering case) and
the CSV rows are asserted exactly. Fixture: 2 exercises, sft_loss (1 visible + 2 hidden points) and
sequence_log_prob (1 + 1).
"""
from __future__ import annotations

import copy
import csv
import json
import sqlite3
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.grade import grade
from autograder.pool import GradingOptions

from demo_course import COURSE, RELEASE, SEQ_OK, SFT_OK, SFT_PARTIAL, SOURCE, gradebook_scores, with_answers  # noqa: E402


def dump(nb) -> str:
    return nbformat.writes(nb)


def cell_of(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def make_class(root: Path) -> dict[str, str]:
    """student -> notebook text (nbgrader layout written under root/submitted)."""
    full = with_answers({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK})
    s = {}
    s["right"] = SOURCE.read_text()
    s["release"] = RELEASE.read_text()
    s["answers"] = dump(full)
    s["partial"] = dump(with_answers({"sft_loss": SFT_PARTIAL, "sequence_log_prob": SEQ_OK}))
    # --- bad submissions
    s["badjson"] = dump(full)[:-200]
    s["emptyfile"] = ""
    nb = copy.deepcopy(full)
    nb.cells = []
    s["emptynb"] = dump(nb)
    nb = copy.deepcopy(full)  # tests deleted and the rest edited: graded with the original tests
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_sft_loss_hidden"]
    cell_of(nb, "test_sequence_log_prob").source = "pass"
    s["testsedited"] = dump(nb)
    nb = with_answers({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK})  # copied answer cell: the last one counts
    dup = copy.deepcopy(cell_of(nb, "sft_loss"))
    dup.source = "def sft_loss(token_logps, mask):\n    return 0\n"
    nb.cells.insert(nb.cells.index(cell_of(nb, "sft_loss")), dup)
    s["dupwrongfirst"] = dump(nb)
    # the stub left in place and a working copy pasted below it: Restart-and-Run-All uses the copy
    nb = nbformat.reads(RELEASE.read_text(), as_version=4)
    stub = cell_of(nb, "sft_loss")
    copied = copy.deepcopy(stub)
    copied.source = SFT_OK
    nb.cells.insert(nb.cells.index(stub) + 1, copied)
    cell_of(nb, "sequence_log_prob").source = SEQ_OK
    s["pastedbelow"] = dump(nb)
    # an answer cell that raises while the student's process loads: reported, the other exercise graded
    s["loaderror"] = dump(with_answers({"sft_loss": "1 / 0\n" + SFT_OK, "sequence_log_prob": SEQ_OK}))
    s["loop"] = dump(with_answers({"sft_loss": "def sft_loss(token_logps, mask):\n    while True:\n        pass\n",
                                   "sequence_log_prob": SEQ_OK}))
    s["exit"] = dump(with_answers({"sft_loss": "import random\ndef sft_loss(token_logps, mask):\n"
                                   "    random._os._exit(1)\n", "sequence_log_prob": SEQ_OK}))
    s["memory"] = dump(with_answers({"sft_loss": "def sft_loss(token_logps, mask):\n    x = [0] * (10 ** 10)\n    return x\n",
                                     "sequence_log_prob": SEQ_OK}))
    s["output"] = dump(with_answers({"sft_loss": SFT_OK + "for i in range(200000):\n    print('x' * 100)\n",
                                     "sequence_log_prob": SEQ_OK}))
    nb = with_answers({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK})  # Colab: ids, extra metadata, v4.0
    nb.metadata["colab"] = {"provenance": [], "name": "demo.ipynb"}
    nb.metadata["accelerator"] = "GPU"
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:04d}"
        cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
        if cell.cell_type == "code":
            cell.metadata["outputId"] = f"o{i}"
    s["colab"] = json.dumps(nb, indent=2)
    nb = with_answers({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK})  # older release: no nbgrader metadata
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    nb.cells.insert(3, nbformat.v4.new_code_cell("def old_exercise():\n    pass"))
    s["oldrelease"] = dump(nb)
    # --- tampering: each would raise a score if it worked
    wrong_sft = "def sft_loss(token_logps, mask):\n    return torch.tensor(0.0)\n"
    tamper = {
        "patchallclose": "import torch\ntorch.allclose = lambda *a, **k: True\n" + wrong_sft,
        "patchchecks": "import rlcourse\nrlcourse.checks.check_close = lambda *a, **k: None\n" + wrong_sft,
        "patchcheckfn": "check_close = lambda *a, **k: None\ncheck_scalar = lambda *a, **k: None\n" + wrong_sft,
        "patchnumpy": "import numpy.testing as nt\nnt.assert_allclose = lambda *a, **k: None\n" + wrong_sft,
        "assertion": "class AssertionError(Exception):\n    pass\n" + wrong_sft,
        "excepthook": "import sys\nsys.excepthook = lambda *a: None\n" + wrong_sft,
        "ipyhook": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n" + wrong_sft,
        "replacechecks": "import sys, types\nm = types.ModuleType('rlcourse.checks')\nsys.modules['rlcourse.checks'] = m\n" + wrong_sft,
        "reference": "from rlcourse.reference import sft_loss as _ref\ndef sft_loss(token_logps, mask):\n    return _ref(token_logps, mask)\n",
        "readhidden": "import glob\ntext = open(glob.glob('**/*.ipynb', recursive=True)[0]).read()\n" + wrong_sft,
        "gradebook": "import sqlite3\nsqlite3.connect('gradebook.db').execute('update grade set auto_score=99')\n" + wrong_sft,
        "solutions": "import os\nopen(os.path.join(os.environ.get('HOME', '/'), 'x.txt'), 'w')\n" + wrong_sft,
        # patches torch.Tensor inside the function: only the sandbox's own torch is patched
        "insidefn": "import torch\ndef sft_loss(token_logps, mask):\n    m = torch.Tensor\n"
                    "    m.any = lambda self, *a, **k: torch.tensor(False)\n    return torch.tensor(0.0)\n",
        "builtins": "def sft_loss(token_logps, mask):\n    return 0\nisinstance = lambda *a: True\n",
    }
    for name, answer in tamper.items():
        s[name] = dump(with_answers({"sft_loss": answer, "sequence_log_prob": SEQ_OK}))
    for student, text in s.items():
        d = root / "submitted" / student / "demo"
        d.mkdir(parents=True)
        (d / "demo.ipynb").write_text(text)
    # a renamed notebook and a missing one
    d = root / "submitted" / "renamed" / "demo"
    d.mkdir(parents=True)
    (d / "demo (1).ipynb").write_text(s["answers"])
    (root / "submitted" / "missing" / "demo").mkdir(parents=True)
    (root / "submitted" / "missing" / "demo" / "notes.txt").write_text("forgot")
    return s


TAMPER = ["assertion", "builtins", "excepthook", "gradebook", "insidefn", "ipyhook", "patchallclose",
          "patchcheckfn", "patchchecks", "patchnumpy", "readhidden", "reference", "replacechecks", "solutions"]
EXPECTED = {  # student: (sft_loss, sequence_log_prob, total, status)
    "right": ("3", "2", "5", "ok"),
    "answers": ("3", "2", "5", "ok"),
    "release": ("0", "0", "0", "not_attempted"),
    "partial": ("1", "2", "3", "ok"),
    "badjson": ("0", "0", "0", "invalid_json"),
    "emptyfile": ("0", "0", "0", "empty"),
    "emptynb": ("0", "0", "0", "empty"),
    "missing": ("0", "0", "0", "missing"),
    "renamed": ("3", "2", "5", "renamed"),
    "testsedited": ("3", "2", "5", "tests_edited"),
    "dupwrongfirst": ("3", "2", "5", "duplicate_ids"),
    "pastedbelow": ("3", "2", "5", "duplicate_ids"),
    "loaderror": ("0", "2", "2", "load_error"),
    "loop": ("0", "2", "2", "timeout"),
    "exit": ("0", "2", "2", "crashed"),
    "memory": ("0", "2", "2", "memory"),
    "output": ("3", "2", "5", "ok"),
    "colab": ("3", "2", "5", "ok"),
    "oldrelease": ("3", "2", "5", "outdated+tests_edited"),
    # each attack would raise a score if it worked; in the sandbox it reaches nothing that grades, so the
    # wrong answer just scores what it is worth (and nothing is called tampering without evidence)
    **{name: ("0", "2", "2", "ok") for name in TAMPER},
    # these three cells raise in the sandbox (no answer key, no notebook file, no gradebook to reach): reported
    **{name: ("0", "2", "2", "load_error") for name in ("gradebook", "readhidden", "reference")},
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    make_class(root)
    before = {p: p.read_bytes() for p in (COURSE / "solutions").rglob("*") if p.is_file()}
    out = root / "out"
    rows = grade(root / "submitted", out, COURSE, db_url=f"sqlite:///{root / 'gradebook.db'}", quiet=True,
                 nbgrader_dir=root / "course",
                 options=GradingOptions(workers=2, timeout=120, cell_timeout=20, call_seconds=5, memory_gb=4.0))
    after = {p: p.read_bytes() for p in (COURSE / "solutions").rglob("*") if p.is_file()}
    assert before == after
    return root, out, rows


def test_every_row(graded):
    root, out, rows = graded
    with open(out / "grades.csv") as fh:
        table = {r["student"]: r for r in csv.DictReader(fh)}
    got = {s: (r["sft_loss"], r["sequence_log_prob"], r["total"], r["status"]) for s, r in table.items()}
    assert got == EXPECTED, {s: (got.get(s), EXPECTED.get(s)) for s in set(got) | set(EXPECTED) if got.get(s) != EXPECTED.get(s)}
    assert all(r["max"] == "5" and r["assignment"] == "demo" and r["notebook"] == "demo" for r in table.values())
    assert "last cell used" in table["dupwrongfirst"]["notes"]
    notes = table["loaderror"]["notes"]
    assert "sft_loss" in notes and "ZeroDivisionError" in notes, notes
    assert "ModuleNotFoundError" in table["reference"]["notes"] or "ImportError" in table["reference"]["notes"]


def test_gradebook_and_feedback(graded):
    root, out, rows = graded
    scores = gradebook_scores(sqlite3.connect(root / "gradebook.db"))
    assert scores == {s: float(e[2]) for s, e in EXPECTED.items()}
    for student in EXPECTED:
        page = (out / "feedback" / student / "demo" / "demo.html").read_text()
        assert f"Student: {student}" in page
    right = (out / "feedback" / "right" / "demo" / "demo.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in right and "7.0 / 3" not in right  # hidden tests stay hidden
    output = (out / "feedback" / "output" / "demo" / "demo.html").read_text()
    assert len(output) < 2_000_000 and "x" * 100 not in output  # student prints stay in the student's process


def test_zip_lms_export(tmp_path):
    """A flat LMS export in a zip: student id = file name up to the first '_'."""
    full = dump(with_answers({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ana_12345_67_demo.ipynb", full)
        zf.writestr("ben_222_demo.ipynb", RELEASE.read_text())
        zf.writestr("cy_333_homework.ipynb", full)  # renamed: recognised by its cells
        zf.writestr("dee_444_demo.ipynb", "{not json")
    rows = grade(z, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True,
                 nbgrader_dir=tmp_path / "nbgrader",
                 options=GradingOptions(workers=2, timeout=120, cell_timeout=10))
    got = {r["student"]: (r["total"], r["status"]) for r in rows}
    assert got == {"ana": ("5", "ok"), "ben": ("0", "not_attempted"), "cy": ("5", "renamed"), "dee": ("0", "invalid_json")}


def test_config_keys_are_read_by_nbgrader():
    """The timeout and output limits sit on keys nbgrader 0.9 declares as configurable."""
    from nbgrader.preprocessors import Execute, LimitOutput
    from autograder.worker import nbgrader_config

    cfg = nbgrader_config(COURSE, "sqlite://", cell_timeout=7)
    ex = Execute(config=cfg)
    assert ex.timeout == 7 and ex.interrupt_on_timeout and ex.startup_timeout == 120
    assert LimitOutput(config=cfg).max_lines == 200
    assert cfg.ClearMetadataPreprocessor.enabled is False
