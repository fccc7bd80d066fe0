# `make run` sets everything up and runs the service; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test venv test-deps chromium node test-js bench bench-gpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch and torchvision are pinned in pyproject.toml; installing the pair first lets pip
# take a local build where one is provided, before resolving the rest.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python serve.py

# Browser tests drive the system's Chromium (Playwright cannot download one offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ( echo "installing Chromium for the browser tests"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium )

# The front end's pure logic is unit-tested with Node's own test runner (no packages);
# npm installs the single sign-on tests' OpenID Connect provider (tests/oidc).
node:
	@command -v node >/dev/null 2>&1 || \
	  ( echo "installing Node for the front-end unit tests"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs )
	@command -v npm >/dev/null 2>&1 || \
	  ( echo "installing npm for the single sign-on tests' provider"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq npm )

# The single sign-on tests run a real OpenID Connect provider (node's oidc-provider), as
# locked in tests/oidc/package-lock.json.
tests/oidc/node_modules/.package-lock.json: tests/oidc/package-lock.json | node
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error

test-deps: $(VENV)/.installed-test chromium node tests/oidc/node_modules/.package-lock.json

test-js: node
	node --test tests/js/

# Two test processes (pytest-xdist), a module at a time each: most of a module's time is
# spent waiting on its worker processes and the browser, so two of them fill both cores.
# TEST_PROCESSES=0 runs everything in this one process.
TEST_PROCESSES ?= 2
test: test-deps test-js
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_PROCESSES)),-n $(TEST_PROCESSES) --dist loadfile)

# Speed and memory targets: each benchmark measures against its baseline in one run.
bench: $(VENV)/.installed
	@command -v zip >/dev/null 2>&1 || ( $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq zip )
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench

# The GPU set on a CUDA machine (under 10 minutes, nothing downloaded): real-size SD 1.5, SDXL,
# FLUX.1, Z-Image and FLUX.2 klein with random weights, built on the GPU; the table goes into README.md.
bench-gpu: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench gpu

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
