"""nbgrader's configuration for stock commands run from the repository root (nbgrader's own
`nbgrader ...` commands and formgrader): the course's settings live in autograder/nbgrader_config.py."""
import os

c = get_config()  # noqa: F821 - provided by nbgrader
load_subconfig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "autograder", "nbgrader_config.py"))  # noqa: F821
