# mlvault: one-command set-up, synth, tests and demo. No Docker, no global installs, no AWS account.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CDK := node_modules/.bin/cdk
LAMBDA_PYTHON := 3.14
LAMBDA_PLATFORM := manylinux_2_28_x86_64
# Lambda's Python 3.14 runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels, and the older manylinux2014
# (glibc 2.17) ones of packages that publish no newer tag (cffi). pip takes each tag it is given, no others.
LAMBDA_PLATFORMS := --platform $(LAMBDA_PLATFORM) --platform manylinux2014_x86_64

# Offline and quiet: no credentials, no instance metadata look-ups, no CDK notices or telemetry.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_EC2_METADATA_DISABLED := true
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)
CDK_FLAGS := --no-notices --no-version-reporting

.PHONY: setup synth test lint format demo bench bench-contracts clean

setup: $(VENV)/.installed node_modules/.installed build/layers/deps/.installed build/layers/arrow/.installed \
	build/layers/onnx/.installed build/layers/onnxgraph/.installed
	@echo 'set up. The CLI is $(BIN)/mlvault; `source $(BIN)/activate` puts mlvault on PATH.'

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Lambda dependency layer, built for Lambda's platform with pip (no Docker).
build/layers/deps/.installed: layers/deps/requirements.txt $(VENV)/.installed
	rm -rf build/layers/deps && mkdir -p build/layers/deps
	$(BIN)/pip install --quiet --disable-pip-version-check --target build/layers/deps/python \
		$(LAMBDA_PLATFORMS) --python-version $(LAMBDA_PYTHON) --implementation cp \
		--only-binary=:all: -r layers/deps/requirements.txt
	touch $@

# pyarrow for the functions that validate data contracts, in a layer of its own, trimmed by infra/layers.py to
# what they use (CSV, JSON, Parquet, compute): Lambda allows 250 MB unzipped for code and layers together.
build/layers/arrow/.installed: layers/arrow/requirements.txt infra/layers.py $(VENV)/.installed
	rm -rf build/layers/arrow && mkdir -p build/layers/arrow
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile --target build/layers/arrow/python \
		--platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON) --implementation cp \
		--only-binary=:all: -r layers/arrow/requirements.txt
	$(BIN)/python infra/layers.py build/layers/arrow/python
	touch $@

# onnxruntime (with numpy, its one dependency InferenceSession needs) for the functions that run ONNX models, in a
# layer of its own, trimmed by infra/layers.py (tools, transformers, quantization, the C API library, numpy's tests).
build/layers/onnx/.installed: layers/onnx/requirements.txt infra/layers.py $(VENV)/.installed
	rm -rf build/layers/onnx && mkdir -p build/layers/onnx
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile --no-deps --target build/layers/onnx/python \
		--platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON) --implementation cp \
		--only-binary=:all: -r layers/onnx/requirements.txt
	rm -rf build/layers/onnx/python/bin
	$(BIN)/python infra/layers.py build/layers/onnx/python
	touch $@

# onnx for the pipeline function's built-in trainer, which writes its model's ONNX graph (numpy: the layer above).
build/layers/onnxgraph/.installed: layers/onnxgraph/requirements.txt infra/layers.py $(VENV)/.installed
	rm -rf build/layers/onnxgraph && mkdir -p build/layers/onnxgraph
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile --no-deps --target build/layers/onnxgraph/python \
		--platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON) --implementation cp \
		--only-binary=:all: -r layers/onnxgraph/requirements.txt
	rm -rf build/layers/onnxgraph/python/bin
	$(BIN)/python infra/layers.py build/layers/onnxgraph/python
	touch $@

synth: setup
	$(CDK) synth --quiet $(CDK_FLAGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The tests: lint (ruff check + format check), then pytest on TEST_WORKERS workers (pytest-xdist; a module's tests
# stay on one worker, so each e2e module shares its local cloud). The e2e tests wait on scaled timers and polls, so a
# third worker fills that time even on two cores (measured on 2 vCPU: 2 workers 5:35, 3 workers 4:54).
# pytest exits 5 when it collects nothing: a failure.
TEST_WORKERS ?= 3
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The main job: set up, synthesize, run the scripted story on a fresh local cloud, stop it.
demo: synth
	$(BIN)/mlvault demo

# Benchmarks are commands, not tests: make bench [SIZE_MIB=1024]
SIZE_MIB ?= 1024
bench: synth
	$(BIN)/mlvault bench ingest --size-mib $(SIZE_MIB)

ROWS ?= 5000000
# The peers (pandas, pandera, Great Expectations) live in their own venv: never in .venv or in Lambda.
build/bench-venv/.installed: requirements-bench.txt
	test -x build/bench-venv/bin/python || $(PYTHON) -m venv build/bench-venv
	build/bench-venv/bin/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench-contracts: setup build/bench-venv/.installed
	$(BIN)/mlvault bench contracts --rows $(ROWS) --peers-python build/bench-venv/bin/python

clean:
	rm -rf cdk.out build .pytest_cache .ruff_cache .mlvault
