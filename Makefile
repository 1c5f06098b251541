# Voiceline: `make demo` places one simulated call; `make test` runs every test.
# Both build their own environment first, with Python 3.13 when pyenv or the PATH has it.

PYTHON_BASE ?= $(shell for p in "$$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13" python3.13 python3; do \
	command -v "$$p" >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
SAM_ENV := .tools/sam
SAM := $(SAM_ENV)/bin/sam

.PHONY: venv chromium demo test dev lint bench admin-key clean

$(VENV)/.installed: requirements-dev.txt bridge/requirements.txt layers/core/pyproject.toml
	$(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Debian's Chromium, for the dashboard's browser test and make demo's screenshot (Playwright drives it and never
# downloads a browser of its own). Installed when missing, through sudo unless we are root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

demo: venv
	$(PY) -m local.demo

test: venv chromium
	$(PY) -m pytest

dev: venv
	$(PY) -m local.stack

# A tenant and an admin API key in the running local stack (make dev); the key is printed once.
# make admin-key TENANT=tenant-demo [NAME=laptop]
TENANT ?= tenant-demo
admin-key: venv
	$(PY) -m local.admin_key --tenant "$(TENANT)" $(if $(NAME),--name "$(NAME)")

# The SAM CLI lives in its own tool environment, never in the project's dependencies.
$(SAM_ENV)/.installed:
	$(PYTHON_BASE) -m venv $(SAM_ENV)
	$(SAM_ENV)/bin/pip install --quiet --upgrade pip
	$(SAM_ENV)/bin/pip install --quiet aws-sam-cli
	touch $@

lint: venv $(SAM_ENV)/.installed
	$(VENV)/bin/ruff check .
	$(SAM) validate --lint --region us-east-1

# Cold-start figures for the tool Lambdas (about half a minute).
bench: venv
	$(PY) -m local.bench

clean:
	rm -rf $(VENV) $(SAM_ENV) .pytest_cache out
