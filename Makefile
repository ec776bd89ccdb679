# The README's two commands: `make demo` runs the product, `make test` runs the tests.
# Both create .venv with the pinned dependencies on first use; nothing else needs installing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

# Local development and tests run with DEBUG on unless the caller says otherwise; production
# sets DJANGO_SECRET_KEY and leaves DJANGO_DEBUG unset.
export DJANGO_DEBUG ?= 1

.PHONY: install demo test lint migrate bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: install
	$(PY) -m demo.run $(DEMO_ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run

migrate: install
	$(PY) manage.py migrate

clean:
	rm -rf var/test-db.sqlite3* .pytest_cache test-artifacts
