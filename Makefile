# Two commands for a fresh machine:  make lab   (open the notebook series, student build: no solution cells)
#                                    make test  (run every test)
# For instructors: make lab-instructor (the full notebooks/, solutions included, the files you edit),
# make student / make instructor (notebook copies without / with solutions in build/),
# make book (every notebook executed to HTML in build/book; HMF_LAB_QUICK=1 for a fast build),
# make slides (a reveal.js deck per notebook in build/slides, from the student copies; SLIDES=full|code),
# make app (the explorer as a sliders-only web page with Voila on 127.0.0.1:$(APP_PORT)),
# make assignments (the graded problem sets for students, build/assignments), make grade SUBMISSIONS=DIR (nbgrader).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hmf_lab-installed
APP_PORT ?= 8866

.PHONY: lab lab-instructor test env bench clean student instructor book slides app assignments grade grade-selftest

env: $(STAMP)

# CPU-only torch first (an unpinned torch pulls a multi-GB CUDA build), then the package and its tools.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# --allow-root only when run as root (containers), where JupyterLab otherwise refuses to start
ROOT_FLAG = $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# students: the student build, which has no solution cells at all (nothing to unfold). It is made once; your
# work in build/student/ is never overwritten by `make lab` (`make student` rebuilds it, overwriting it).
lab: $(STAMP)
	test -d build/student || $(PY) -m tools.course student --out build/student
	$(VENV)/bin/jupyter lab build/student/ $(ROOT_FLAG)

# instructors and contributors: the notebooks/ sources, solution cells included (collapsed)
lab-instructor: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(ROOT_FLAG)

test: $(STAMP)
	$(PY) -m pytest

# the fast subset for the edit-test loop (< 60 s): no slow, notebook or browser tests (markers: pyproject.toml)
.PHONY: quick
quick: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not notebook and not browser"

bench: $(STAMP)
	$(VENV)/bin/hmf-lab bench

# the lessons notebooks/NN_*.ipynb: student copies drop cells tagged `solution`, instructor copies keep them
student: $(STAMP)
	$(PY) -m tools.course student --out build/student

instructor: $(STAMP)
	$(PY) -m tools.course instructor --out build/instructor

# executes every notebook (full mode unless HMF_LAB_QUICK=1) and writes build/book/index.html + one page each
book: $(STAMP)
	$(PY) -m tools.course book --out build/book

# build/slides/NN_*.slides.html, one reveal.js deck per notebook, made from the student copy (no solutions).
# SLIDES=quick (default): executed with HMF_LAB_QUICK=1, so the figures are on the slides, in minutes;
# SLIDES=full: the real sizes (as `make book`), slower; SLIDES=code: not executed (text and code only), seconds.
# reveal.js, require.js, jQuery and MathJax are copied once from npm to build/slides/_static/ so the decks open
# offline (without npm they load from a CDN when viewed, and the build says so).
SLIDES ?= quick
SLIDES_FLAGS_quick = --quick
SLIDES_FLAGS_full  = --full
SLIDES_FLAGS_code  = --no-execute
slides: $(STAMP)
	@case "$(SLIDES)" in quick|full|code) ;; *) echo "make slides: SLIDES must be quick, full or code, got '$(SLIDES)'" >&2; exit 2;; esac
	$(PY) -m tools.course slides --out build/slides $(SLIDES_FLAGS_$(SLIDES))

# the graded assignments (assignments/*.py, nbgrader): student versions without solutions or hidden tests
assignments: $(STAMP)
	$(PY) -m tools.grade release --out build/assignments

# autograde SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb; grades.csv + questions.csv in build/grades
SUBMISSIONS ?=
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=DIR (DIR/<student>/<assignment>/<assignment>.ipynb)"; exit 2; }
	$(PY) -m tools.grade grade $(SUBMISSIONS) --out build/grades

# the grader on the instructor's solutions and on known-wrong copies (build/grades-selftest)
grade-selftest: $(STAMP)
	$(PY) -m tools.grade selftest --out build/grades-selftest

# the explorer alone, sliders only (no code), at http://127.0.0.1:$(APP_PORT)
app: $(STAMP)
	$(VENV)/bin/voila apps/explorer.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(APP_PORT) \
		--VoilaConfiguration.show_tracebacks=True

clean:
	rm -rf $(VENV) .pytest_cache build
