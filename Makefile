# relove — two commands: `make demo` runs the bot on the embedded default, `make test` tests it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo lint test system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the bot against the local sandbox Bot API on a fresh SQLite database; chat in a browser.
demo: $(STAMP)
	$(BIN)/relove demo

## Debian packages the tests run: headless Chromium for the browser tests (never a downloaded
## build) and HAProxy for the deployment config check (and bench/cluster.py).
SYSTEM_DEPS := chromium haproxy
system-deps:
	@missing="$$(for p in $(SYSTEM_DEPS); do command -v $$p >/dev/null 2>&1 || echo $$p; done)"; \
	[ -z "$$missing" ] || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

## Lint: ruff (style, imports, bugbear, async, print, naive datetimes), mypy (types) and
## import-linter (no import cycle between rooms, the transport's rules); all configured in
## pyproject.toml. Zero findings is the bar: `make test` runs this first.
lint: $(STAMP)
	$(BIN)/ruff check relove tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## All tests: SQLite always, PostgreSQL too when RELOVE_TEST_DATABASE_URL is set.
test: $(STAMP) lint system-deps
	$(BIN)/python -m pytest

## Benchmarks (need PostgreSQL: RELOVE_BENCH_DATABASE_URL, default the local `test` database).
bench: $(STAMP)
	$(BIN)/python bench/touch.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache relove.egg-info
