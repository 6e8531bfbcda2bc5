"""The grader's one exception for a run it will not do: input it cannot read, or a host it cannot grade safely on.

Library code raises ``GradingError``; only the command lines (``main``) turn it into a message and exit
status 1, so callers (``autograder.one``, the benchmarks, the tests) get an exception they can catch.
"""


class GradingError(Exception):
    """A grading run that cannot start: the message says why and, where it can, how to fix it."""
