# The one task runner. Each target creates the virtualenv when it is missing, and makes
# it again when an earlier attempt left it half made (no .venv/bin/pip).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test lint bench format clean venv

# The virtualenv with pip in it, made by $(PY): Python 3.11 or newer, with its venv module
# (Debian and Ubuntu ship that apart, as python3-venv). Anything else stops here with a
# message that says what to install.
$(BIN)/pip:
	@command -v $(PY) >/dev/null 2>&1 || { \
	  echo "make: $(PY) not found. TallyHub needs Python 3.11 or newer with venv:" \
	    "apt-get install python3 python3-venv (Debian), or pass PY=/path/to/python3" >&2; \
	  exit 1; }
	@version=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { \
	  echo "make: $(PY) does not run; pass PY=/path/to/python3 (3.11 or newer)" >&2; exit 1; }; \
	major=$${version%%.*}; minor=$${version#*.}; \
	if [ "$$major" -lt 3 ] || { [ "$$major" -eq 3 ] && [ "$$minor" -lt 11 ]; }; then \
	  echo "make: TallyHub needs Python 3.11 or newer, and $(PY) is $$version." \
	    "Install a newer one (Debian 12: apt-get install python3) or pass PY=python3.12" >&2; \
	  exit 1; \
	fi; \
	if [ -e $(VENV) ]; then \
	  echo "make: $(VENV) has no bin/pip (left by a failed attempt): making it again"; \
	  rm -rf $(VENV); \
	fi; \
	$(PY) -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  echo "make: '$(PY) -m venv' failed: Python's venv module (with ensurepip) is missing." \
	    "On Debian or Ubuntu: apt-get install python3-venv (or python$$version-venv)," \
	    "then run make again." >&2; \
	  exit 1; }

venv: $(BIN)/pip

$(STAMP): pyproject.toml $(BIN)/pip
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The DOU+, video and call-center simulators run inside serve (TALLYHUB_<DOMAIN>__SIMULATOR),
# with a partner's callback receiver: the DOU+ accounts are connected to the demo admin,
# tasks with completions are seeded and scanned, and the last ten call-center days are
# synced, so every page fills, and the webhook log shows delivered callbacks, by themselves.
run: $(STAMP)
	mkdir -p var
	$(BIN)/tallyhub db upgrade
	$(BIN)/tallyhub demo seed
	TALLYHUB_DOUPLUS__SIMULATOR=$${TALLYHUB_DOUPLUS__SIMULATOR:-true} \
	TALLYHUB_TASKSTATS__SIMULATOR=$${TALLYHUB_TASKSTATS__SIMULATOR:-true} \
	TALLYHUB_CALLCENTER__SIMULATOR=$${TALLYHUB_CALLCENTER__SIMULATOR:-true} $(BIN)/tallyhub serve

# Everything under tests/: unit, API, the three databases, fuzz, and the dashboard's
# browser tests in Chromium (apt-get install chromium; .ci/run does).
# In TEST_WORKERS processes (pytest-xdist); the tests that share a live server, a fuzz
# run or an outside service stay together in one of them (tests/conftest.py).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src bench
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
