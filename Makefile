# aot-edu: `make lab` sets everything up and opens the course; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB_SRC := $(wildcard notebooks/[0-9][0-9]_*.py)
NB_OUT := $(NB_SRC:.py=.ipynb)

.PHONY: setup train-course-model ablations lab test test-fast figures docs notebooks check-notebooks bench lint clean help
.DEFAULT_GOAL := help

help:
	@echo "make lab        set up .venv (if missing) and open the course in JupyterLab"
	@echo "make test       unit tests (pytest), the notebooks (nbval, quick mode), widgets and website in Chromium"
	@echo "make train-course-model  reproduce the shipped course model (hours on a CPU; resumable)"
	@echo "make ablations  the paper's Table 3 at small scale for notebook 07 (hours on a CPU; resumable)"
	@echo "make test-fast  unit tests only (no notebooks, no browser)"
	@echo "make figures    run the notebooks (quick mode) to redraw figures/ (the README's pictures)"
	@echo "make docs       the course as a website: executed notebooks and API reference, in build/site"
	@echo "make notebooks  regenerate notebooks/*.ipynb from their jupytext sources"
	@echo "make bench      run the benchmarks and write bench/RESULTS.md"
	@echo "make lint       ruff over the package, tests, notebooks and benchmarks; the layer contract"

# The virtual environment is created when missing and refreshed when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

setup: $(STAMP)

# The course model ships with the course (aot_edu/assets/course_model.pt and its card); this
# reproduces it: the four stages (static-image pre-training, then video training on short
# clips, on long clips fed back, and on larger frames with AOT-L's memory) with the project's
# trainer, then the fp16 export, the held-out measurements and the card. Interrupted?
# Run it again: each stage continues from its last checkpoint, and a finished stage returns at
# once. Hours on a 2-core CPU; minutes on a GPU.
train-course-model: setup
	$(VENV)/bin/aot-edu train --config configs/course_pre.toml
	$(VENV)/bin/aot-edu train --config configs/course.toml
	$(VENV)/bin/aot-edu train --config configs/course_long.toml
	$(VENV)/bin/aot-edu train --config configs/course_fine.toml
	$(PY) -m aot_edu.course.card --ship

# The paper's ablations (Table 3) at small scale, each row a change of configs/ablations.toml
# trained from the course model with two seeds (aot_edu/course/ablations.py); every finished
# run is added at once to aot_edu/assets/ablations/, which notebook 07 reads. Interrupted? Run
# it again: finished runs are skipped, the unfinished one continues from its checkpoint. About
# five minutes per run on a 2-core CPU; then identification against post-ensemble.
ablations: setup
	$(PY) -m aot_edu.course.ablations run
	$(PY) -m aot_edu.course.ablations strategies

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

# Unit tests plus every notebook run top to bottom in quick mode (the mode whose printed
# numbers the notebooks' checked cells expect; AOT_EDU_MODE=full make test runs the full one).
# The notebooks' figures go to build/test-figures: a test run leaves the committed figures/
# (some show timings, which differ from run to run) untouched; `make figures` redraws them.
NBVAL := $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider
# The layer contract (pyproject.toml, [tool.importlinter]) is checked first: it takes seconds.
test: setup
	$(VENV)/bin/lint-imports
	AOT_EDU_MODE=$${AOT_EDU_MODE:-quick} AOT_EDU_FIGURES="$${AOT_EDU_FIGURES:-$(CURDIR)/build/test-figures}" \
		$(NBVAL) tests notebooks

# Machine-dependent figures (timings) normally go to build/outputs (AOT_EDU_OUTPUTS, ignored by
# git); `make figures` is the one place that redraws them into figures/ with the rest.
figures: setup
	AOT_EDU_MODE=$${AOT_EDU_MODE:-quick} AOT_EDU_FIGURES="$(CURDIR)/figures" \
		AOT_EDU_OUTPUTS="$(CURDIR)/figures" $(NBVAL) notebooks

test-fast: setup
	$(PY) -m pytest tests -m "not browser" -p no:cacheprovider

# The course as a static website (MkDocs): every notebook executed in quick mode, its widgets as
# picture galleries that work without a kernel, the README as home page, the API reference from
# the docstrings. Offline at build time. Output: build/site (open build/site/index.html).
docs: setup
	AOT_EDU_MODE=$${AOT_EDU_MODE:-quick} $(PY) docs/build.py

# The .py files are the source; the .ipynb files are generated from them, without outputs.
notebooks: setup
	$(PY) -m aot_edu.course --write

check-notebooks: setup
	$(PY) -m aot_edu.course --check

bench: setup
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check aot_edu tests bench notebooks
	$(VENV)/bin/lint-imports

clean:
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
