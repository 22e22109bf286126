# nbgrader settings of the hmf_lab course; tools/grade.py copies this file into each (temporary) course directory.
# See assignments/README.md. The gradebook is sqlite in the course directory (nbgrader's default db_url).
c = get_config()  # noqa: F821 (nbgrader's config loader defines get_config)

c.CourseDirectory.course_id = "hmf_lab"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]  # no .py pairs
# what a student sees in place of a solution
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# seconds per cell when autograding (nbgrader's default, 30, is short for a busy grading machine)
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
