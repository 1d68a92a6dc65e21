# pgnotes: build the book, run every test, re-execute the notebooks.
# `make book` and `make test` are the two commands of the README; `.ci/run` calls `make test`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
REPORTS := _build/reports
STAMP := $(VENV)/.installed

.PHONY: help venv book test test-package test-notebooks test-build test-browser notebooks sync benchmark budgets student clean assignments mutation

help:
	@echo "make book       create $(VENV), install pinned versions, build the HTML book in _build/html"
	@echo "make test       package tests, strict nbval on every notebook, book build with warnings as errors"
	@echo "make notebooks  re-execute every notebook in place (fresh kernel, top to bottom)"
	@echo "make sync       rewrite each notebook's generated first cells from _config.yml"
	@echo "make benchmark  run the benchmark scripts (speed targets; not part of the tests)"
	@echo "make budgets    time and peak memory of each chapter in a fresh one-CPU kernel (20 s, 1.5 GB)"
	@echo "make student    build the student edition (no solutions) in _build/student/_build/html and check it"
	@echo "make clean      remove _build and $(VENV)"
	@echo "make assignments  build each assignment's student notebook and Gradescope autograder in _build/assignments"
	@echo "make mutation   mutation score of the core modules with mutmut (about 30-60 min; not part of make test)"

# The environment is rebuilt when the package metadata or the pinned versions change.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e ".[book,test]"
	touch $(STAMP)

venv: $(STAMP)

# Renders the committed notebooks and their outputs; changes no tracked file
# (`make sync` regenerates the notebooks' generated cells; a test fails when they are stale).
book: $(STAMP)
	$(BIN)/jupyter-book build . --builder html
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

test: test-package test-notebooks test-build test-browser
	@echo "All tests passed: package, notebooks (strict nbval), book build (-W -n), every page in a browser."

test-package: $(STAMP)
	mkdir -p $(REPORTS)
	$(BIN)/python -m pytest tests --junitxml=$(REPORTS)/package.xml

# Strict nbval: every code cell's output is compared with the committed one.
test-notebooks: $(STAMP)
	mkdir -p $(REPORTS)
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider --junitxml=$(REPORTS)/notebooks.xml book

test-build: $(STAMP)
	mkdir -p $(REPORTS)
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going 2>&1 | tee $(REPORTS)/book-build.log

# Every page of _build/html in headless Chromium, with every request beyond the local server refused
# (the book ships its MathJax); tools/ensure_browser.sh installs Chromium if missing.
# It needs the book that test-build makes, so `make -j test` runs it after the build.
test-browser: test-build
	mkdir -p $(REPORTS)
	$(BIN)/python -m pytest tests/browser -p no:cacheprovider --junitxml=$(REPORTS)/browser.xml

notebooks: $(STAMP)
	$(BIN)/python -m tools.notebooks execute

sync: $(STAMP)
	$(BIN)/python -m tools.notebooks sync

benchmark: $(STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script; done

budgets: $(STAMP)
	$(BIN)/python -m tools.budgets

student: $(STAMP)
	$(BIN)/python -m tools.student_build
	BOOK_HTML=_build/student/_build/html BOOK_CONFIG=_build/student/_config.yml \
		BOOK_SCREENSHOTS=_build/student/screenshots $(BIN)/python -m pytest tests/browser -p no:cacheprovider

clean:
	rm -rf _build $(VENV)

# Assignments (otter-grader): each master notebook assignments/NAME/NAME.ipynb becomes
# _build/assignments/NAME/student/NAME.ipynb (to hand out) and _build/assignments/NAME/autograder/
# (NAME-autograder_*.zip to upload to Gradescope). otter assign also runs the tests on the solutions.
ASSIGNMENT_DIR := _build/assignments

assignments: $(STAMP)
	for master in assignments/*/*.ipynb; do \
		name=$$(basename $$master .ipynb); \
		rm -rf $(ASSIGNMENT_DIR)/$$name; \
		(cd assignments/$$name && $(CURDIR)/$(BIN)/otter assign --no-pdfs $$name.ipynb $(CURDIR)/$(ASSIGNMENT_DIR)/$$name); \
	done
	@echo "Student notebooks and autograders are in $(ASSIGNMENT_DIR)"

# --------------------------------------------------------------------------- #
# Mutation testing (not part of `make test`). mutmut changes one operator, constant or argument of
# gaussian, objectives, lqr, estimators and reinforce at a time and reruns the tests that reach it;
# tools/mutation_score.py prints the share of changes the tests detect, per module and in total.
# Settings: [tool.mutmut] in pyproject.toml. Results are kept in mutants/: a second run retests only
# what changed; `rm -rf mutants` starts afresh. `mutmut show NAME` prints a surviving change.
# --------------------------------------------------------------------------- #
MUTATION_JOBS ?= 2

mutation: $(STAMP)
	$(BIN)/python -c "import mutmut" 2>/dev/null || \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e ".[dev]"
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children $(MUTATION_JOBS)
	$(BIN)/python -m tools.mutation_score
