"""nbgrader configuration for the course: the repository is the course root.

solutions/<assignment>/<assignment>.ipynb  (source: solutions, visible and hidden tests)
notebooks/<assignment>/<assignment>.ipynb  (release: generated, never edited by hand)

`python -m autograder.grade` loads this file and then points ``CourseDirectory.root`` at a private
workspace per submission; everything else below is what grading really runs with.
Key names were checked against nbgrader 0.9.6: ``Execute`` (nbgrader's subclass of nbconvert's
ExecutePreprocessor) redeclares ``timeout`` with its own default of 30 s, so the timeout must be set
on ``Execute``; ``LimitOutput`` caps lines. The student's own prints never reach the kernel: they
stay in the sandboxed process's log, capped there (autograder/sandboxed/student_server.py).
"""
import os

from coursetools.layout import STUB

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.course_id = "rl-for-llms"
c.ClearSolutions.code_stub = {"python": STUB}  # the release names it after the exercise (coursetools/layout.py)
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Never enable ClearMetadataPreprocessor here: generate_assignment does not use it, and nbgrader's
# autograde runs it before SaveAutoGrades, so it would strip the grade metadata (every test scores 0).

# --- execution under grading (NBGRADER_EXECUTION=autograde turns on rlcourse's reduced mode) ---
c.Execute.timeout = 120                  # seconds per cell (the grader's --cell-timeout default)
c.Execute.startup_timeout = 120          # kernel start (torch import on a busy machine)
c.Execute.interrupt_on_timeout = True    # interrupt a cell that never ends, then go on
c.Execute.raise_on_iopub_timeout = False
c.Execute.execute_retries = 0
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:"]

# --- output limits (lines per cell of the course's own test cells) ---
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 60
