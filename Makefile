# lacak: `make run` serves the embedded default with demo data; `make test` runs every check.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo serve test lint typecheck browser pytest bench bench-webhooks bench-live clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo allows webhook callbacks to this machine's own addresses (and says so).
run: $(STAMP)
	LACAK_WEBHOOK_ALLOW_PRIVATE=1 $(VENV)/bin/lacak demo
	LACAK_WEBHOOK_ALLOW_PRIVATE=1 $(VENV)/bin/lacak serve

test: lint typecheck browser pytest

# The live page's tests drive a real headless Chromium (Debian's, not a download) and check the
# HTML with the W3C Nu validator, which runs on Java.
browser:
	@command -v chromium >/dev/null && command -v java >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver default-jre-headless >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/run.py --backend both

bench-webhooks: $(STAMP)
	$(PY) bench/webhooks.py --backend both

bench-live: $(STAMP)
	$(PY) bench/live.py --backend both

clean:
	rm -rf $(VENV) lacak-data .pytest_cache .mypy_cache .ruff_cache
