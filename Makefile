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

.PHONY: help venv book test test-package test-notebooks test-build notebooks sync benchmark clean

help:
	@echo "make book       create $(VENV), install pinned versions, build the HTML book in _build/html"
	@echo "make test       package tests, strict nbval on every notebook, book build with warnings as errors"
	@echo "make notebooks  re-execute every notebook in place (fresh kernel, top to bottom)"
	@echo "make sync       rewrite each notebook's generated first cells from _config.yml"
	@echo "make benchmark  run the benchmark scripts (speed targets; not part of the tests)"
	@echo "make clean      remove _build and $(VENV)"

# The environment is rebuilt when the package metadata or the pinned versions change.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e ".[book,test]"
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(BIN)/python tools/notebooks.py sync
	$(BIN)/jupyter-book build . --builder html
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

test: test-package test-notebooks test-build
	@echo "All tests passed: package, notebooks (strict nbval), book build (-W -n)."

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

notebooks: $(STAMP)
	$(BIN)/python tools/notebooks.py execute

sync: $(STAMP)
	$(BIN)/python tools/notebooks.py sync

benchmark: $(STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf _build $(VENV)
