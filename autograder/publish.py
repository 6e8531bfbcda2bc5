"""Publishing a run's outcomes: ``grades.csv``, ``not_graded.csv``, each student's feedback page, and the
submitted and autograded notebooks where nbgrader's formgrader looks for them.

Every file is written whole or not at all (a killed run leaves no half a file), and every CSV cell is
escaped for spreadsheets (``spreadsheet_cell``). What the student may read (the feedback page, ``notes``)
never holds the grader's own diagnostics (``grader_notes``: grades.csv only).
"""
from __future__ import annotations

import csv
import html
import os
import re
from pathlib import Path

from .pool import GRADER_ERROR, Outcome

STATUS_ORDER = ["ok", "not_attempted", "missing", "empty", "invalid_json", "too_large", "corrupt", "renamed",
                "outdated", "duplicate_ids", "tests_edited", "timeout", "memory", "crashed", "load_error",
                "tampering", "unsandboxed", "error", "grader_error"]


def status_of(tags) -> str:
    """A row's status: its tags in STATUS_ORDER, joined by ``+`` (``ok`` alone when there is nothing else)."""
    tags = set(tags) - {"ok"}
    if not tags:
        return "ok"
    return "+".join([t for t in STATUS_ORDER if t in tags] + sorted(tags - set(STATUS_ORDER)))


def feedback_page(outcome: Outcome, status: str) -> str:
    """The student's page: points, status and notes (never grader_notes), above nbgrader's feedback."""
    failed = GRADER_ERROR in outcome.tags
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{'-' if failed else f'{outcome.points[n]:g}'} / "
                   f"{outcome.max_points[n]:g}</td></tr>" for n in outcome.points)
    total, mx = sum(outcome.points.values()), sum(outcome.max_points.values())
    score = f"not graded yet (of {mx:g})" if failed else f"{total:g} / {mx:g}"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in outcome.notes)
    banner = (f'<div style="border:2px solid #888;padding:8px;margin:8px;font-family:sans-serif">'
              f"<h2>{html.escape(outcome.assignment)} / {html.escape(outcome.notebook)}: {score}</h2>"
              f"<p>Student: {html.escape(outcome.student)}. Status: <b>{html.escape(status)}</b></p>"
              f"<table>{rows}</table><ul>{notes}</ul></div>")
    if outcome.feedback:
        return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, outcome.feedback, count=1)
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{banner}<p>This notebook was not run.</p></body></html>"


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` (its folders made), written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def publish(outcome: Outcome, out: Path, nbgrader_dir: Path, submitted: bytes | None) -> None:
    """The student's feedback page, and the submitted and autograded notebooks where nbgrader's formgrader
    looks for them."""
    status = status_of(outcome.tags)
    if submitted is not None:
        path = nbgrader_dir / "submitted" / outcome.student / outcome.assignment / f"{outcome.notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(submitted)
    write_atomic(out / "feedback" / outcome.student / outcome.assignment / f"{outcome.notebook}.html",
                  feedback_page(outcome, status))
    if outcome.autograded:
        write_atomic(nbgrader_dir / "autograded" / outcome.student / outcome.assignment / f"{outcome.notebook}.ipynb",
                      outcome.autograded)


def write_csv(out: Path, outcomes: list[Outcome], sources) -> list[dict]:
    """``grades.csv``: a row per outcome, a column per exercise of the course; returns the rows."""
    exercise_cols = [n for (a, _), s in sorted(sources.items()) for n in s.exercises]
    rows = []
    for o in outcomes:
        src = sources[(o.assignment, o.notebook)]
        graded = GRADER_ERROR not in o.tags  # a grader fault leaves the points blank: not the student's zero
        row = {"student": o.student, "assignment": o.assignment, "notebook": o.notebook}
        row.update({n: (f"{o.points[n]:g}" if n in o.points and graded else "") for n in exercise_cols})
        row.update({"total": f"{sum(o.points.values()):g}" if graded else "", "max": f"{src.max_points:g}",
                    "status": status_of(o.tags), "notes": " | ".join(o.notes),
                    "grader_notes": " | ".join(o.grader_notes), "seconds": f"{o.seconds:.1f}"})
        rows.append(row)
    fields = ["student", "assignment", "notebook", *exercise_cols, "total", "max", "status", "notes", "grader_notes",
              "seconds"]
    write_table(out / "grades.csv", [fields] + [[row[f] for f in fields] for row in rows])
    return rows


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula (``=``, ``+``, ``-``, ``@``,
    tab, carriage return: the usual CSV-injection defence) gets a ``'`` in front."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_table(path: Path, rows: list[list]) -> None:
    """Every CSV the grader writes: cells escaped for spreadsheets, written whole or not at all."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", errors="replace") as fh:
        csv.writer(fh).writerows([[spreadsheet_cell(v) for v in row] for row in rows])
    os.replace(tmp, path)


def write_not_graded(out: Path, skipped: list[tuple[str, str]]) -> None:
    """``not_graded.csv``: each input that is no student's (``input, reason``), so nothing is lost silently."""
    write_table(out / "not_graded.csv", [["input", "reason"], *skipped])


