# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on first use, installs the package and the Fashion-MNIST data.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install data demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev,postgres,onnx]'
	touch $@

data:
	bash scripts/ensure_data.sh

install: $(STAMP) data

demo: install
	$(BIN)/autoprune search studies/demo.toml
	$(BIN)/autoprune finalize studies/demo.toml
	$(BIN)/autoprune report studies/demo.toml
	$(BIN)/autoprune export studies/demo.toml

test: install
	bash scripts/ensure_postgres.sh
	bash scripts/ensure_chromium.sh
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
