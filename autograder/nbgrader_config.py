"""nbgrader configuration for the course: the repository is the course root.

solutions/<assignment>/<assignment>.ipynb  (source: solutions, visible and hidden tests)
notebooks/<assignment>/<assignment>.ipynb  (release: generated, never edited by hand)
"""
import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.course_id = "rl-for-llms"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearMetadataPreprocessor.enabled = True
