# Two entry points: `make demo` and `make test`. Both build their own virtual environment.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 5000
# Test processes: the suite waits on servers, browsers and the database as much as it computes.
TEST_WORKERS ?= 3

.PHONY: install demo test lint typecheck chromium postgres serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium drives the browser tests; Playwright must never download its own browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || ( $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium )

# The PostgreSQL tests need the local server; start it if it has stopped.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
		( $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && sleep 2 )

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

test: install chromium postgres lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

DEMO_SECRET := instance/demo_secret_key
# The demo serves plain HTTP on the loopback: cookies cannot be Secure there.
DEMO_ENV = HITL_SECRET_KEY="$$(cat $(DEMO_SECRET))" HITL_SECURE_COOKIES=0

$(DEMO_SECRET):
	@mkdir -p instance && umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > $@

# The production layout on one machine: gunicorn web workers plus the one learner process.
# Ctrl-C reaches both (same process group); the trap stops the learner if the server ends first.
demo: install $(DEMO_SECRET)
	$(BIN)/hitl db upgrade
	$(BIN)/hitl demo-data --items 2000 --customers 300 --seed 7
	$(BIN)/hitl warm-up --decisions 300 --seed 7
	$(BIN)/hitl curator add curator --password curator-demo --if-missing
	$(BIN)/hitl curator add admin --role admin --password admin-demo --if-missing
	@echo "API token for client service demo-client:"
	@$(BIN)/hitl token create demo-client --replace
	@echo "Console: http://$(HOST):$(PORT)  login: curator / curator-demo   (Ctrl-C stops)"
	@echo "Admin pages (/settings, /quality, ...): login admin / admin-demo"
	@$(DEMO_ENV); export HITL_SECRET_KEY HITL_SECURE_COOKIES; \
		$(BIN)/hitl learn --watch --every 10 & learner=$$!; \
		trap 'kill -TERM $$learner 2>/dev/null; wait $$learner' EXIT INT TERM; \
		$(BIN)/hitl serve --host $(HOST) --port $(PORT) --workers 2 --threads 4

serve: install $(DEMO_SECRET)
	$(DEMO_ENV) $(BIN)/hitl serve --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
