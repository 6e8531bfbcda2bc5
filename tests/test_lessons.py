"""Lessons as data (rlcourse/lessons.py), the results ledger (benchmarks/ledger/) and the prose that quotes it."""
import json
import re
import subprocess
import sys

import pytest

from coursetools.layout import assignment_ids, read_json, source_notebook
from rlcourse.lessons import LESSONS, Lesson, LessonError, evaluate, lesson, metric_names, parse_results
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
LEDGER = ROOT / "benchmarks" / "ledger"
SWEEP = ROOT / "benchmarks" / "lessons.py"
import lessons as sweep


# ----------------------------------------------------------------------------- criteria on synthetic lines
LINES = ["[device] cpu", "  | [result] 03_actor_critic_review_score_reinforce = 1.200",
         "[result] 03_actor_critic_review_score_reinforce_baseline = 1.300",
         "[result] 03_actor_critic_label = matcha",            # not a number: no metric
         "[result] 04_ppo_rlhf_review_score_reinforce = 9.000"]  # another notebook's


def test_parse_results_keeps_this_notebooks_numbers():
    assert parse_results(LINES, "03_actor_critic") == {"review_score_reinforce": 1.2,
                                                       "review_score_reinforce_baseline": 1.3}


def test_a_lesson_that_holds_and_one_that_fails():
    baseline = lesson("03.baseline")
    metrics = parse_results(LINES, "03_actor_critic")
    assert baseline.measure(metrics) == pytest.approx(0.1)
    assert baseline.holds(metrics)
    metrics["review_score_reinforce_baseline"] = 1.1
    assert not baseline.holds(metrics)
    metrics["review_score_reinforce_baseline"] = 1.2      # equal: ">" 0 does not hold
    assert not baseline.holds(metrics)


def test_a_missing_result_is_a_clear_error_never_a_pass():
    with pytest.raises(LessonError, match="review_score_reinforce_baseline"):
        lesson("03.baseline").holds({"review_score_reinforce": 1.0})


def test_expressions_allow_arithmetic_only():
    assert evaluate("max(a, b) / 2 - abs(-c)", {"a": 1.0, "b": 3.0, "c": 0.5}) == 1.0
    assert metric_names("a / max(b, 0.001)") == {"a", "b"}
    for bad in ("a.__class__", "__import__('os')", "a ** 2", "a if b else c", "a[0]", "open(a)"):
        with pytest.raises(LessonError):
            metric_names(bad)
    with pytest.raises(LessonError):
        Lesson("03.x", "04_ppo_rlhf", "a", ">", 0, "names its own notebook")
    assert evaluate("a / b", {"a": 1.0, "b": 0.0}) != evaluate("a / b", {"a": 1.0, "b": 0.0})   # nan: never holds


# ----------------------------------------------------------------------------- the committed ledger
def committed_ledgers():
    return sorted(LEDGER.glob("*.json"))


def test_the_cpu_ledger_exists():
    assert (LEDGER / "cpu.json").is_file(), "run benchmarks/lessons.py run, then render"


@pytest.mark.parametrize("path", committed_ledgers(), ids=lambda p: p.stem)
def test_ledger_is_rendered_from_its_runs(path):
    """The ledger is what its kept runs give (nothing edited by hand), with the schema the prose test reads."""
    ledger = json.loads(path.read_text())
    rebuilt = sweep.build_ledger(sweep.load_runs(LEDGER, ledger["device"]), ledger["device"])
    assert json.loads(json.dumps(rebuilt)) == ledger, "render the ledger again: benchmarks/lessons.py render"
    assert (LEDGER / f"{ledger['device']}.md").read_text() == sweep.render_markdown(ledger)
    for notebook, data in ledger["notebooks"].items():
        assert data["runs"] and data["metrics"], notebook
        for run in data["runs"]:
            assert {"seed", "threads", "device_name", "torch", "transformers", "python"} <= set(run)
        for metric in data["metrics"].values():
            assert metric["min"] <= metric["median"] <= metric["max"]


def test_every_lesson_holds_in_the_cpu_ledger():
    """Every lesson of a notebook in the ledger holds in at least 4 of 5 seeds and at the other thread count."""
    ledger = json.loads((LEDGER / "cpu.json").read_text())
    missed = []
    for item in LESSONS:
        assert item.notebook in ledger["notebooks"], f"{item.notebook} has no runs in the CPU ledger"
        entry = ledger["lessons"][item.name]
        ok, why = sweep.verdict(entry)
        if not ok:
            missed.append(f"{item.name}: {why}")
        assert entry["other_threads"], f"{item.name}: no run at another thread count"
    assert not missed, "\n".join(missed)


# ----------------------------------------------------------------------------- prose quotes the ledger
RESULTS_PARAGRAPH = "**What the runs showed**"
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+%?")


def ledger_values(notebook: str) -> list[float]:
    values = []
    for path in committed_ledgers():
        ledger = json.loads(path.read_text())
        data = ledger["notebooks"].get(notebook, {"metrics": {}})
        entries = list(data["metrics"].values()) + [e for e in ledger["lessons"].values() if e["notebook"] == notebook]
        for entry in entries:
            values += [entry[k] for k in ("median", "min", "max") if k in entry]
            values += list(entry["seeds"].values()) + [o["value"] for o in entry["other_threads"]]
    return values


def quoted(text: str) -> str:
    """The text without math and code spans (settings such as `KL_BETA` or $\\beta = 0.1$ are no results)."""
    return re.sub(r"\$[^$]*\$|`[^`]*`", " ", text)


def unmatched_figures(paragraph: str, values: list[float]) -> list[str]:
    missing = []
    for figure in NUMBER.findall(quoted(paragraph)):
        digits = len(figure.rstrip("%").split(".")[1])
        x = float(figure.rstrip("%"))
        scales = (100.0,) if figure.endswith("%") else (1.0, 100.0)
        if not any(round(v * s, digits) == round(x, digits) for v in values for s in scales):
            missing.append(figure)
    return missing


def results_paragraphs(text: str) -> list[str]:
    """Paragraphs that report results: one that starts with "What the runs showed" or cites the ledger,
    and the bullets that follow it."""
    found, in_results = [], False
    for paragraph in re.split(r"\n\s*\n", text):
        starts = paragraph.lstrip("*# ").startswith(RESULTS_PARAGRAPH.strip("*")) or "ledger" in paragraph.lower()
        in_results = starts or (in_results and paragraph.lstrip().startswith(("* ", "- ")))
        if in_results:
            found.append(paragraph)
    return found


def test_bullets_after_a_results_paragraph_are_checked_too():
    text = "Intro 0.123.\n\n**What the runs showed**: 0.5.\n\n* a bullet 0.7\n\n* another 0.9\n\nNext section 0.111."
    assert results_paragraphs(text) == ["**What the runs showed**: 0.5.", "* a bullet 0.7", "* another 0.9"]


def test_the_figure_check_catches_a_figure_not_in_the_ledger():
    values = [0.4512, 0.7, 12.34]
    assert unmatched_figures("**What the runs showed**: 0.45 and 70.0% and 12.3, $\\beta = 0.1$", values) == []
    assert unmatched_figures("**What the runs showed**: fell 0.454", values) == ["0.454"]
    assert unmatched_figures("`LR = 3.5` and 70.5%", values) == ["70.5%"]


@pytest.mark.parametrize("notebook", assignment_ids())
def test_results_prose_quotes_the_ledger(notebook):
    """Every decimal figure in a notebook's "What the runs showed" paragraphs is a ledger figure of that
    notebook (a median, an end of a range, one seed's value), as written or as a percentage, or of
    another notebook that the paragraph names ("notebook 04")."""
    text = "\n\n".join("".join(c["source"]) for c in read_json(source_notebook(notebook))["cells"]
                       if c["cell_type"] == "markdown")
    if "our full-mode run" in text.lower():
        pytest.fail(f"{notebook} quotes one run (\"our full-mode run\"): results come from the ledger")
    for paragraph in results_paragraphs(text):
        values = ledger_values(notebook)
        for other in assignment_ids():   # a paragraph that names "notebook 04" may quote 04's figures
            if other != notebook and re.search(rf"\bnotebook {other[:2]}\b", paragraph):
                values += ledger_values(other)
        assert not unmatched_figures(paragraph, values), (
            f"{notebook}: figures not in the ledger: {unmatched_figures(paragraph, values)}\n{paragraph[:300]}")


def test_readme_results_prose_quotes_the_ledger():
    values = [v for nb in assignment_ids() for v in ledger_values(nb)]
    for paragraph in results_paragraphs((ROOT / "README.md").read_text()):
        assert not unmatched_figures(paragraph, values), paragraph[:300]


# ----------------------------------------------------------------------------- the sweep itself
@pytest.mark.slow
def test_the_sweep_in_reduced_mode(tmp_path):
    """Two seeds of one notebook in reduced mode: kept runs, a rendered ledger, and check's verdict."""
    command = [sys.executable, str(SWEEP), "run", "02_policy_gradients", "--seeds", "0", "1", "--reduced",
               "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = sorted((tmp_path / "runs" / "cpu" / "02_policy_gradients").glob("*.json"))
    assert [p.name for p in runs] == ["seed0-threads2.json", "seed1-threads2.json"]
    assert json.loads(runs[1].read_text())["seed"] == 1
    assert "review_gap_closed" in json.loads(runs[0].read_text())["metrics"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert "0 runs to do" in again.stdout           # kept runs are not run again
    rendered = subprocess.run([sys.executable, str(SWEEP), "render", "--device", "cpu", "--out", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 1 and "only 2 seeds run" in rendered.stdout   # 2 seeds never meet 4 of 5
    ledger = json.loads((tmp_path / "cpu.json").read_text())
    assert set(ledger["lessons"]) == {"02.monte_carlo_rate", "02.reinforce"}
    assert ledger["lessons"]["02.reinforce"]["seeds"].keys() == {"0", "1"}
    assert (tmp_path / "cpu.md").read_text().startswith("# Results ledger: cpu")
    refused = subprocess.run([sys.executable, str(SWEEP), "run", "02_policy_gradients", "--reduced"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "never go into the committed ledger" in refused.stderr


def test_seed_replaces_the_config_line_once():
    import run_notebook

    assert run_notebook.with_seed(["x = 1\nSEED = 0\ny = SEED", "z"], 7) == ["x = 1\nSEED = 7\ny = SEED", "z"]
    with pytest.raises(ValueError, match="0 lines"):
        run_notebook.with_seed(["SEED = 1"], 3)
    with pytest.raises(ValueError, match="2 lines"):
        run_notebook.with_seed(["SEED = 0", "SEED = 0"], 3)
    for notebook in assignment_ids():
        run_notebook.with_seed(run_notebook.code_cells(source_notebook(notebook)), 1, notebook)


def test_a_notebook_prints_its_run_beside_the_ledger(capsys, monkeypatch):
    from rlcourse.config import Report

    monkeypatch.setenv("RLCOURSE_REDUCED", "0")
    report = Report("03_actor_critic")
    report("review_score_reinforce", 1.0)
    report("review_score_reinforce_baseline", 1.2345)
    report.lessons()
    out = capsys.readouterr().out
    assert "[lesson] 03.baseline: " in out and "holds in this run (0.234)" in out   # the value as printed (1.234)
    assert "[lesson] 03.actor_critic: " in out and "not measured in this run" in out
    ledger = json.loads((LEDGER / "cpu.json").read_text())["lessons"]["03.baseline"]
    assert f"held in {ledger['held']} of {len(ledger['seeds'])} seeds" in out
    monkeypatch.setenv("RLCOURSE_REDUCED", "1")
    report.lessons()
    assert "reduced mode" in capsys.readouterr().out


def test_metric_names_with_a_dot_are_read_with_an_underscore():
    item = Lesson("07.x", "07_agents", "rl_w0_5_abstain_ratio", ">=", 3.0, "a name printed as rl_w0.5_...")
    assert item.holds({"rl_w0.5_abstain_ratio": 3.5})
