# Voiceline: `make demo` places one simulated call; `make test` runs every test.
# Both build their own environment first, with Python 3.13 when pyenv or the PATH has it.

PYTHON_BASE ?= $(shell for p in "$$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13" python3.13 python3; do \
	command -v "$$p" >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
SAM := .tools/sam/bin/sam
CHECKOV := .tools/checkov/bin/checkov

.PHONY: venv chromium demo test dev lint deploy bench soak cost-report admin-key clean

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

# The SAM CLI and checkov live in tool environments of their own (.tools/<tool>), never in the
# project's dependencies. checkov is pinned: a new release brings new checks.
TOOL_PACKAGE_sam := aws-sam-cli
TOOL_PACKAGE_checkov := checkov==3.3.30
.tools/%/.installed:
	$(PYTHON_BASE) -m venv .tools/$*
	.tools/$*/bin/pip install --quiet --upgrade pip
	.tools/$*/bin/pip install --quiet "$(TOOL_PACKAGE_$*)"
	touch $@

lint: venv .tools/sam/.installed .tools/checkov/.installed
	$(VENV)/bin/ruff check .
	$(SAM) validate --lint --region us-east-1
	$(CHECKOV) -f template.yaml --framework cloudformation --compact --quiet --skip-download

# Builds the functions, builds the bridge image for linux/arm64 and pushes it to ECR (creating the
# repository on first use), then deploys the stack with that image. Needs the AWS CLI (with
# credentials), Docker with buildx, and python3.13 on the PATH for `sam build`. Parameters given once
# are kept by later deploys. `make -n deploy` prints the commands without running them.
#   make deploy PARAMETERS="TwilioAccountSid=AC... CertificateArn=arn:aws:acm:... BridgePublicUrl=wss://bridge.example.com"
STACK ?= voiceline
REGION ?= us-east-1
IMAGE_REPOSITORY ?= voiceline-bridge
PARAMETERS ?=
deploy: .tools/sam/.installed
	$(SAM) build
	set -eu; \
	registry="$$(aws sts get-caller-identity --query Account --output text).dkr.ecr.$(REGION).amazonaws.com"; \
	image="$$registry/$(IMAGE_REPOSITORY):$$(git rev-parse --short HEAD)$$(git diff --quiet HEAD || date +-dirty-%Y%m%d%H%M%S)"; \
	aws ecr describe-repositories --region $(REGION) --repository-names $(IMAGE_REPOSITORY) >/dev/null 2>&1 || \
		aws ecr create-repository --region $(REGION) --repository-name $(IMAGE_REPOSITORY) \
			--image-scanning-configuration scanOnPush=true >/dev/null; \
	aws ecr get-login-password --region $(REGION) | docker login --username AWS --password-stdin "$$registry"; \
	docker buildx build --platform linux/arm64 -f bridge/Dockerfile -t "$$image" --push .; \
	$(SAM) deploy --stack-name $(STACK) --region $(REGION) --parameter-overrides "BridgeImageUri=$$image $(PARAMETERS)"

# The reference call, naive and with Voiceline's defaults, side by side (about five minutes, offline).
cost-report: venv
	$(PY) -m local.cost_report

# Measured figures: cold starts, tool round trips, the admin API, and concurrent calls through the bridge
# (seven to eight minutes). By default (local/bench.py) calls 50,100,100,100,150 for 20 s: 100 calls run three
# times, their greeting and turn overheads pooled, since one run's p99 is its second-worst greeting.
# make bench LOAD_CALLS=50 LOAD_SECONDS=10 for a shorter load run.
bench: venv
	$(PY) -m local.bench $(if $(LOAD_CALLS),--load-calls "$(LOAD_CALLS)") $(if $(LOAD_SECONDS),--load-seconds "$(LOAD_SECONDS)")

# Memory over a bounded soak: SOAK_CALLS callers kept up for SOAK_MINUTES, each call SOAK_CALL_SECONDS long.
SOAK_CALLS ?= 50
SOAK_MINUTES ?= 10
SOAK_CALL_SECONDS ?= 60
soak: venv
	$(PY) -m local.load_bench --calls $(SOAK_CALLS) --soak-minutes $(SOAK_MINUTES) --seconds $(SOAK_CALL_SECONDS)

clean:
	rm -rf $(VENV) .tools .pytest_cache out
