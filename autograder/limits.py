"""The limits a grading run puts on a student's notebook, declared once.

The command lines and ``grade()`` take their defaults from here; ``grade()`` writes the values of a run
into the job file of each notebook, and the grader's kernel (``remote.py``) reads them from there, with
these same values for a job that leaves one out (the tests build such jobs by hand).
"""
import os

CALL_SECONDS = 60.0        # one call of a student's function (wall clock)
MEMORY_GB = 4.0            # address space of the student's process
KERNEL_MEMORY_GB = 1.0     # what the grader's own kernel may allocate once it starts grading (its control
                           # group): about 30 MB for each of 04, 05 and 07
CPU_SECONDS = 600          # CPU time of the student's process
PROCESSES = 128            # processes the student's process may start (its cgroup's pids.max)
NOTEBOOK_SECONDS = 900.0   # one notebook's whole run
LOAD_SECONDS = 90.0        # running the student's own cells before the first test (the job's load budget)
SCRATCH_MB = 256           # the student's writable /tmp
WORKERS = min(2 * (os.cpu_count() or 1), 8)   # notebooks at once: much of a run is waiting for processes to start
