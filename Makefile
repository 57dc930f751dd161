# Two commands for a newcomer: `make book` (build and run the book) and `make test`.
# Both create the virtual environment and install everything on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup book test paper bench overview sync-links clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Execute every chapter and write HTML to _build/html. -W turns warnings into errors and
# nb_execution_raise_on_error (in _config.yml) makes a failing chapter fail the build.
book: $(STAMP)
	rm -rf _build/html _build/jupyter_execute
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@echo "open _build/html/index.html"

test: $(STAMP)
	$(VENV)/bin/nbstripout --verify book/*.ipynb
	$(PY) -m ibtools.booklinks --check
	$(PY) -m pytest -q -n 2 --dist loadscope

# The full-scale study behind the book's figures (hours on 2 CPU cores; resumable).
paper: $(STAMP)
	$(PY) -m ibtools paper

overview: $(STAMP)
	$(PY) scripts/make_overview_figure.py

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

sync-links: $(STAMP)
	$(PY) -m ibtools.booklinks

clean:
	rm -rf _build _scratch_results .pytest_cache
