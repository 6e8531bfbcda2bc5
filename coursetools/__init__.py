"""The course's tooling, beside the student's package ``rlcourse`` (which holds only what the notebooks and the
grader's sandbox import):

    coursetools.layout      assignments, their cells, the code mirrors and the release step (nbgrader)
    coursetools.workspace   the student's workspace and its JupyterLab (scripts/course.sh)
    coursetools.contract    COURSE_CONTRACT.md read as data (the tests)
    coursetools.kernels     settings for the Jupyter kernels the course starts (JupyterLab, tests, benchmarks)

The repository root and the data folder are ``rlcourse.paths``; the course's folder names are ``coursetools.layout``.
"""
