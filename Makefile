# Two commands for a fresh machine:  make lab   (open the notebook series)   make test   (run every test)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hmf_lab-installed

.PHONY: lab test env bench clean

env: $(STAMP)

# CPU-only torch first (an unpinned torch pulls a multi-GB CUDA build), then the package and its tools.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# --allow-root only when run as root (containers), where JupyterLab otherwise refuses to start
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

test: $(STAMP)
	$(PY) -m pytest

# the fast subset for the edit-test loop (< 60 s): no slow, notebook or browser tests (markers: pyproject.toml)
.PHONY: quick
quick: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not notebook and not browser"

bench: $(STAMP)
	$(VENV)/bin/hmf-lab bench

clean:
	rm -rf $(VENV) .pytest_cache
