# Two commands do all the set-up on a fresh machine:
#   make quickstart   create .venv, install, run the embedded quickstart study, write its report
#   make test         create .venv, install (with test extras), run the test suite
#   make notebooks    run the notebooks and save their outputs (committed with them)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hplandscape-installed

.PHONY: quickstart test notebooks install clean-venv

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements/pinned.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/pinned.txt
	$(BIN)/python -m pip install --quiet -c requirements/pinned.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python -m hplandscape sweep

test: $(STAMP)
	$(BIN)/python -m pytest

notebooks: $(STAMP)
	$(BIN)/jupyter execute --inplace notebooks/*.ipynb

clean-venv:
	rm -rf $(VENV)
