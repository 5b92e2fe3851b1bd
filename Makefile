# t2t-multimodel: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data/mm8_mini
RUN    ?= runs/demo
STEPS  ?= 1500

.PHONY: install demo test test-all bench reproduce clean

install: $(VENV)/.installed

# Idempotent: reinstalls only when setup.py changes (the install is editable).
$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(BIN)/mm-datagen --problems=mm8_mini --data_dir=$(DATA)

# pytest exits 5 when a marker selects no test: not a failure.
test: install
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: install
	$(BIN)/python -m pytest -q -n 2 tests

bench: install
	@for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
