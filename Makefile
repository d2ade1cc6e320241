# aot-edu: `make lab` sets everything up and opens the course; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB_SRC := $(wildcard notebooks/[0-9][0-9]_*.py)
NB_OUT := $(NB_SRC:.py=.ipynb)

.PHONY: setup course-model lab test test-fast figures notebooks check-notebooks bench lint clean help
.DEFAULT_GOAL := help

help:
	@echo "make lab        set up .venv (if missing) and open the course in JupyterLab"
	@echo "make test       run the unit tests (pytest) and the notebooks (nbval, quick mode)"
	@echo "make course-model  train the course model once (about 10 min on a 2-core CPU)"
	@echo "make test-fast  unit tests only"
	@echo "make figures    run the notebooks (quick mode) to redraw figures/ (the README's pictures)"
	@echo "make notebooks  regenerate notebooks/*.ipynb from their jupytext sources"
	@echo "make bench      run the benchmarks and write bench/RESULTS.md"
	@echo "make lint       ruff over the package, tests, notebooks and benchmarks"

# The virtual environment is created when missing and refreshed when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

setup: $(STAMP)

# The course's main job: AOT trained from scratch on synthetic videos (configs/quick_cpu.toml),
# used by notebooks 02-05. Trained once into runs/course; a finished run returns at once, an
# interrupted one resumes from its last checkpoint, and one made with an older quick_cpu.toml is
# renamed runs/course-outdated-<time> and the model trained again.
course-model: setup
	$(PY) -m aot_edu.course --model

lab: course-model
	$(VENV)/bin/jupyter lab notebooks/

# Unit tests plus every notebook run top to bottom in quick mode (the mode whose printed
# numbers the notebooks' checked cells expect; AOT_EDU_MODE=full make test runs the full one).
# The notebooks' figures go to build/test-figures: a test run leaves the committed figures/
# (some show timings, which differ from run to run) untouched; `make figures` redraws them.
NBVAL := $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider
test: course-model
	AOT_EDU_MODE=$${AOT_EDU_MODE:-quick} AOT_EDU_FIGURES="$${AOT_EDU_FIGURES:-$(CURDIR)/build/test-figures}" \
		$(NBVAL) tests notebooks

figures: course-model
	AOT_EDU_MODE=$${AOT_EDU_MODE:-quick} AOT_EDU_FIGURES="$(CURDIR)/figures" $(NBVAL) notebooks

test-fast: setup
	$(PY) -m pytest tests -p no:cacheprovider

# The .py files are the source; the .ipynb files are generated from them, without outputs.
notebooks: setup
	$(PY) -m aot_edu.course --write

check-notebooks: setup
	$(PY) -m aot_edu.course --check

bench: setup
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check aot_edu tests bench notebooks

clean:
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
