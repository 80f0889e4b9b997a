# The two README commands: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHROMIUM := /usr/bin/chromium

.PHONY: run dev test stop status lint browser bench clean-data

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The local CPU build first: a bare `torch` would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## run: venv, install, embedded PostgreSQL+Redis, migrate, bootstrap, demo data, static files,
##      then the production set-up: gunicorn + WhiteNoise with DEBUG off, and a worker restarted if it dies
run: $(STAMP)
	$(BIN)/python manage.py serve

## dev: the same set-up with Django's autoreloading development server and DEBUG on
dev: $(STAMP)
	$(BIN)/python manage.py serve --dev

## test: the same set-up, the import-layer contract, then the whole pytest suite
test: $(STAMP) browser
	$(BIN)/python manage.py services start
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

## browser: Debian's Chromium for the browser tests (installed only when missing and root)
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	else \
		echo "Chromium is missing: browser tests will be SKIPPED. Install it with: sudo apt-get install -y chromium"; \
	fi

## stop: end the embedded PostgreSQL and Redis (data is kept)
stop: $(STAMP)
	$(BIN)/python manage.py services stop

## status: are the embedded servers running?
status: $(STAMP)
	$(BIN)/python manage.py services status

## lint: the import-layer contract
lint: $(STAMP)
	$(BIN)/lint-imports

## clean-data: stop the embedded servers and delete the data directory .data/
clean-data: stop
	rm -rf .data
