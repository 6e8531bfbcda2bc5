"""What runs inside the sandbox: the student's process (``student_server.py``) and the wire it speaks
(``protocol.py``, which the grader imports too). Both are copied into the sandbox, where they import
nothing from the course; everything else in ``autograder/`` runs on the grader's side of the boundary."""
