# Two commands for a newcomer: `make book` (build and run the book) and `make test`.
# Both create the virtual environment and install everything on first use.
# `make test-fast` is the quick loop while developing: everything but the slow tests (those that
# build the book or execute chapters).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup book test test-fast paper paper-fused rerun ground-truth mnist1d bench overview sync-links clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Build the book into _build/html (scripts/build_book.py): strict (-W; a failing chapter fails
# the build), chapter kernels with one thread each, and executed chapters cached in
# _build/.jupyter_cache so that a rebuild re-executes only the chapters that changed (all of them
# after a change to ibtools/, results/ or requirements.txt). `make book FRESH=1` (and CI) executes
# every chapter. A successful build writes _build/book.stamp, which lets `make test` reuse it.
book: $(STAMP)
	$(PY) scripts/build_book.py $(if $(FRESH),--fresh)
	@echo "open _build/html/index.html"

# Every stored notebook: the chapters and the drafts (there may be none; a glob that matches
# nothing would reach nbstripout as a file name).
NOTEBOOKS = $(wildcard book/*.ipynb book/drafts/*.ipynb)

# The full suite (what .ci/run runs). The rendered-book test reuses _build/html when `make book`
# built it from the current sources, and builds it otherwise (in CI: always, from scratch).
test: $(STAMP)
	$(VENV)/bin/nbstripout --verify $(NOTEBOOKS)
	$(PY) -m ibtools.booklinks --check
	$(PY) -m pytest -q -n 2 --dist loadscope

test-fast: $(STAMP)
	$(VENV)/bin/nbstripout --verify $(NOTEBOOKS)
	$(PY) -m ibtools.booklinks --check
	$(PY) -m pytest -q -n 2 --dist loadscope -m "not slow"

# The full-scale study behind the book's figures (hours on 2 CPU cores; resumable).
paper: $(STAMP)
	$(PY) -m ibtools paper

# The same study with both compiled CPU paths (fused training kernel, compiled KDE engine): its
# numbers agree with the stored study's to float32 rounding, not bit for bit, so it goes to a
# directory of its own (`make clean` deletes it with _scratch_results). JOBS processes share it
# (each unit is locked while one computes it); the first shows progress; Ctrl-C stops them all;
# resumable like `make paper`.
JOBS        ?= 2
FUSED_CACHE ?= _scratch_results/paper_fused
paper-fused: $(STAMP)
	@pids=; trap 'kill $$pids 2>/dev/null; exit 130' INT TERM; \
	for i in $$(seq $(JOBS)); do \
	  $(PY) -m ibtools paper --fused --cache $(FUSED_CACHE) $$([ $$i -eq 1 ] || echo --no-progress) & pids="$$pids $$!"; \
	done; status=0; for p in $$pids; do wait $$p || status=1; done; exit $$status

rerun: $(STAMP)
	$(PY) -m ibtools.rerun

ground-truth: $(STAMP)
	$(PY) -m ibtools.ground_truth_study

mnist1d: $(STAMP)
	$(PY) -m ibtools.mnist1d_study

overview: $(STAMP)
	$(PY) scripts/make_overview_figure.py

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

sync-links: $(STAMP)
	$(PY) -m ibtools.booklinks

clean:
	rm -rf _build _scratch_results .pytest_cache
