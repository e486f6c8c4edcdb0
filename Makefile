# Townhall: `make run` starts the server, `make test` checks everything.
# Both work on a fresh Debian machine: as root, missing Debian packages are
# installed with apt; the Python environment lives in .venv.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What `make run` needs, and what the tests need on top (real Chromium, real
# Redis, `ip` and `unshare` for the loopback-only network namespace, Janus and
# a C compiler for the benchmark's comparison target and its getifaddrs shim).
RUN_DEBS := python3 python3-venv
TEST_DEBS := chromium redis-server iproute2 util-linux espeak-ng ffmpeg janus gcc libc6-dev
# Python packages whose code `mypy` checks (recorder once it exists).
TYPED := townhall sfu control clients $(if $(wildcard recorder/__init__.py),recorder)
PYTEST_ARGS ?=

.PHONY: run test install lint typecheck pytest run-debs test-debs

run: run-debs install
	$(BIN)/townhall serve

test: run-debs test-debs install lint typecheck pytest

install: $(VENV)/.installed

# Reinstall when the dependencies change; the editable install picks up code changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy $(TYPED)

# WebRTC and browser tests must see only `lo`: otherwise ICE gathers (and
# Chromium tries) the machine's other interfaces. Creating the namespace needs
# root; elsewhere the tests run in the normal network.
pytest: install
	@if [ "$$(id -u)" -eq 0 ]; then \
	  echo "pytest in a network namespace with only lo"; \
	  unshare -n sh -c 'ip link set lo up && exec $(BIN)/python -m pytest $(PYTEST_ARGS)'; \
	else \
	  echo "not root: pytest runs without a network namespace"; \
	  $(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

run-debs:
	@$(call apt_install,$(RUN_DEBS))

test-debs:
	@$(call apt_install,$(TEST_DEBS))

# Install the Debian packages in $(1) that are missing, when root on a machine with apt.
define apt_install
if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
  missing=""; \
  for deb in $(1); do \
    dpkg-query -W -f='$${db:Status-Status}' "$$deb" 2>/dev/null | grep -qx installed \
      || missing="$$missing $$deb"; \
  done; \
  if [ -n "$$missing" ]; then \
    echo "installing Debian packages:$$missing"; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
  fi; \
fi
endef
