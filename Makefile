PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install demo test matrix alone fuzz bench lint clean

# Re-installs only when the declared dependencies change.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,example]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python manage.py generate_oidc_key
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --base-url http://$(HOST):$(PORT)
	ROPC_ISSUER=http://$(HOST):$(PORT)/o DJANGO_DEBUG=1 $(BIN)/python manage.py runserver $(HOST):$(PORT)

# The whole suite twice: on SQLite, then on a PostgreSQL server it starts (skipped, with the
# reason, where PostgreSQL is not installed; failed under CI=true). The production-profile tests
# start their own PostgreSQL, Redis and gunicorn, so they run in the first pass only.
# Then the supported-version matrix (noxfile.py): Django 5.2 on Python 3.11 and the newest
# Django on Python 3.13, with the oldest and newest django-oauth-toolkit we declare.
test: install
	$(BIN)/python -m pytest
	ROPC_TEST_DATABASE=postgresql $(BIN)/python -m pytest -m "not production and not packaging"
	$(BIN)/nox

matrix: install
	$(BIN)/nox

# Each test file in a pytest of its own (a file must not pass only thanks to another's imports or
# data); not in `make test`, for CI's time. PYTHON_BIN=.nox/<session>/bin/python for another Django.
PYTHON_BIN ?= $(BIN)/python
alone: install
	@for file in tests/test_*.py; do \
	  $(PYTHON_BIN) -m pytest -q -p no:cacheprovider -m "not production and not browser and not packaging" $$file >/dev/null \
	    || { echo "fails alone: $$file"; failed=1; }; \
	done; exit $${failed:-0}

# The fuzzing tests with a long budget (make test runs them with a small one).
fuzz: install
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest tests/test_fuzzing.py

# QUICK=1: a quick look, under a minute (few rounds, 5 s of load per side).
bench: install
	$(BIN)/python benchmarks/token_endpoint.py $(if $(QUICK),--quick)
	$(BIN)/python benchmarks/load.py $(if $(QUICK),--quick)

lint: install
	$(BIN)/ruff check ropc_provider example_project tests benchmarks noxfile.py
	$(BIN)/ruff format --check ropc_provider example_project tests benchmarks noxfile.py
	$(BIN)/mypy
	@# bandit logs a warning for each line of a multi-line statement its `# nosec` covers: shown on failure only.
	$(BIN)/bandit -q -c pyproject.toml -r ropc_provider example_project 2> .bandit.log || (cat .bandit.log; exit 1)

clean:
	rm -rf $(VENV) .nox db.sqlite3 .pytest_cache
