# Two commands do all set-up on a fresh machine:
#   make demo   - virtualenv, install sluice[local], start the local stack, run the demo
#   make test   - virtualenv, install sluice[local,dev], run the schema check and the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test unit integration lint bench stack-up stack-down clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

# checkov scans deploy/terraform in the tests; it lives in its own virtualenv because
# its pinned dependencies would downgrade boto3 beside the project's.
CHECKOV := $(VENV)/checkov-env/bin/checkov
$(CHECKOV): | $(STAMP)
	$(PYTHON) -m venv $(VENV)/checkov-env
	$(VENV)/checkov-env/bin/python -m pip install --quiet checkov==3.3.30
	ln -sf ../checkov-env/bin/checkov $(BIN)/checkov

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sluice demo

# The dashboard's browser test drives Debian's chromium (Playwright cannot download
# browsers here); it is installed when missing and apt-get exists.
CHROMIUM := /usr/bin/chromium

chromium:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; \
	fi

test: $(STAMP) $(CHECKOV) chromium
	$(BIN)/sluice schemas check --level FULL_TRANSITIVE
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP) chromium
	$(BIN)/pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy sluice schemas ingest_api producers firehose_transforms consumers warehouse deploy

# Benchmarks run against the local stack in .sluice/ (started if needed); the ingest
# benchmark also needs wrk (apt-get install wrk). The end-to-end run (e2e.py) makes its
# own topics, streams, bucket and schema in that stack and removes them afterwards.
bench: $(STAMP)
	$(BIN)/sluice stack up
	SLUICE_STACK_ENV=$(CURDIR)/.sluice/stack.env $(BIN)/python benchmarks/ingest.py
	SLUICE_STACK_ENV=$(CURDIR)/.sluice/stack.env $(BIN)/python benchmarks/transform.py
	SLUICE_STACK_ENV=$(CURDIR)/.sluice/stack.env $(BIN)/python benchmarks/load.py
	SLUICE_STACK_ENV=$(CURDIR)/.sluice/stack.env $(BIN)/python benchmarks/consume.py
	SLUICE_STACK_ENV=$(CURDIR)/.sluice/stack.env $(BIN)/python benchmarks/dashboard.py
	SLUICE_STACK_ENV=$(CURDIR)/.sluice/stack.env $(BIN)/python benchmarks/e2e.py --events 100000 --backend both

stack-up: $(STAMP)
	$(BIN)/sluice stack up

stack-down: $(STAMP)
	$(BIN)/sluice stack down

clean: stack-down
	rm -rf .sluice build dist *.egg-info
