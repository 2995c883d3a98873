# Two commands a newcomer needs: `make demo` and `make test`. Both install into ./.venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-min lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# checkov (the security scan of the Dockerfile and the chart) pins packaging<24, which pytest 9 refuses:
# it gets an environment of its own.
$(VENV)-checkov/bin/checkov:
	$(PYTHON) -m venv $(VENV)-checkov
	$(VENV)-checkov/bin/python -m pip install --quiet 'checkov>=3,<4'

install: $(BIN)/.installed $(VENV)-checkov/bin/checkov

demo: $(BIN)/.installed
	$(BIN)/integrateio-exporter --demo

lint: install
	$(BIN)/ruff check exporter tests bench scripts
	$(BIN)/ruff format --check exporter tests bench scripts
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# The same suite on the declared minimum of every runtime dependency (ci/min-versions.txt, equal to
# pyproject.toml's floors), so that the ranges pip allows are ranges we tested. The Dockerfile replay and the
# security scan build environments of their own, so they do not run twice.
MIN := $(VENV)-min
$(MIN)/bin/.installed: pyproject.toml ci/min-versions.txt
	$(PYTHON) -m venv $(MIN)
	$(MIN)/bin/python -m pip install --quiet --upgrade pip
	$(MIN)/bin/python -m pip install --quiet -c ci/min-versions.txt -e '.[test]'
	touch $@

test-min: $(MIN)/bin/.installed
	INTEGRATEIO_MIN_VERSIONS=1 $(MIN)/bin/python -m pytest -p no:cacheprovider \
		--ignore tests/test_dockerfile.py --ignore tests/test_security_scan.py

clean:
	rm -rf $(VENV) $(VENV)-checkov $(MIN) .pytest_cache .mypy_cache .ruff_cache
