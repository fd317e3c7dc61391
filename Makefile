# Two commands on a fresh machine (Python >= 3.11, pip reaching PyPI):
#   make demo   install into .venv/ and run the main job on the built-in default design
#   make test   install if needed and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed
PY     := $(VENV)/bin/python

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"lego-codesign needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lego demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/sim_throughput.py

clean:
	rm -rf $(VENV) out sim_build .pytest_cache
