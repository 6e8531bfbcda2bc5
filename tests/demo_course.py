"""The fixture course the grading tests use (tests/fixtures/course, built by fixtures/make_course.py):
two exercises, ``sft_loss`` (1 visible + 2 hidden points) and ``sequence_log_prob`` (1 + 1), and
answers to put in a student's copy of its release."""
from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import nbformat

from coursetools.layout import release_notebook, source_notebook

COURSE = Path(__file__).resolve().parent / "fixtures" / "course"
SOURCE = source_notebook("demo", COURSE)
RELEASE = release_notebook("demo", COURSE)

SFT_OK = ("def sft_loss(token_logps, mask):\n    m = mask.to(token_logps.dtype)\n"
          "    return -(token_logps * m).sum() / m.sum()\n")
SEQ_OK = "def sequence_log_prob(token_logps, mask):\n    return (token_logps * mask.to(token_logps.dtype)).sum(-1)\n"
# the per-sequence mean: right on one row (visible test), wrong on two rows (hidden): 1 of 3 points
SFT_PARTIAL = ("def sft_loss(token_logps, mask):\n    m = mask.to(token_logps.dtype)\n"
               "    return (-(token_logps * m).sum(-1) / m.sum(-1)).mean()\n")

REPLAY_SFT = (  # records every input it is given, in a module global and in a file under /tmp
    "import json, os\nRECORD = []\n"
    "def sft_loss(token_logps, mask):\n"
    "    RECORD.append([token_logps.tolist(), mask.tolist()])\n"
    "    with open('/tmp/replay.jsonl', 'a') as fh:\n"
    "        fh.write(json.dumps(RECORD[-1]) + '\\n')\n"
    "    m = mask.to(token_logps.dtype)\n"
    "    return -(token_logps * m).sum() / m.sum()\n")
REPLAY_SEQ = (  # ... and raises what was recorded in its visible test, which runs after sft_loss's hidden one
    "def sequence_log_prob(token_logps, mask):\n"
    "    saved = open('/tmp/replay.jsonl').read() if os.path.exists('/tmp/replay.jsonl') else ''\n"
    "    raise ValueError('REPLAY ' + str(RECORD) + ' FILE ' + saved.replace(chr(10), ' '))\n")


def release_nb():
    return nbformat.read(str(RELEASE), as_version=4)


def with_answers(answers: dict, nb=None):
    """A copy of the release (or of ``nb``) with the answer cells named in ``answers`` filled in."""
    nb = copy.deepcopy(nb or release_nb())
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and not cell.metadata["nbgrader"].get("grade"):
            cell.source = answers[gid]
    return nb


def gradebook_scores(con: sqlite3.Connection) -> dict[str, float]:
    """Student id -> the sum of its autograded scores, read from an nbgrader gradebook (sqlite)."""
    return dict(con.execute(
        "select student.id, sum(grade.auto_score) from grade join submitted_notebook on grade.notebook_id = "
        "submitted_notebook.id join submitted_assignment on submitted_notebook.assignment_id = "
        "submitted_assignment.id join student on submitted_assignment.student_id = student.id group by student.id"))


def notebook(answers: dict, mutate=None) -> str:
    """The text of a student's notebook with ``answers``; ``mutate(nb_dict)`` may change it further."""
    nb = json.loads(nbformat.writes(with_answers(answers)))
    if mutate:
        mutate(nb)
    return json.dumps(nb, indent=1)
