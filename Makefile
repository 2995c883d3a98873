# Two commands a newcomer needs: `make demo` and `make test`. Both install into ./.venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

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

clean:
	rm -rf $(VENV) $(VENV)-checkov .pytest_cache .mypy_cache .ruff_cache
