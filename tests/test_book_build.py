"""scripts/build_book.py's bookkeeping (no build): the sources hash that decides whether the tests
may reuse ``_build/html``, and the key that decides whether the execution cache is still valid."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bb(tmp_path, monkeypatch):
    """build_book, pointed at a small fake project in tmp_path."""
    spec = importlib.util.spec_from_file_location("build_book_under_test", ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("book", "ibtools", "results/paper"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "book" / "01.ipynb").write_text("{}")
    (tmp_path / "ibtools" / "engine.py").write_text("x = 1\n")
    (tmp_path / "results" / "paper" / "unit.npz").write_bytes(b"\x00\x01")
    for name in ("_config.yml", "_toc.yml", "requirements.txt"):
        (tmp_path / name).write_text(name)
    build = tmp_path / "_build"
    for attr, value in {"ROOT": tmp_path, "BUILD": build, "HTML": build / "html", "STAMP": build / "book.stamp",
                        "CACHE": build / ".jupyter_cache", "CACHE_KEY": build / ".jupyter_cache" / "inputs.key",
                        "LOG": build / "book-build.log"}.items():
        monkeypatch.setattr(module, attr, value)
    return module


def _fake_build(bb, run_id=None):
    bb.HTML.mkdir(parents=True)
    (bb.HTML / "index.html").write_text("<html></html>")
    bb.STAMP.write_text(json.dumps({"sources": bb.sources_hash(), "run_id": run_id}))


def test_hash_follows_every_source_and_ignores_litter(bb):
    root = bb.ROOT
    before = bb.sources_hash(root=root)
    assert before == bb.sources_hash(root=root)
    # run-time litter (as in .gitignore) does not count
    (root / "ibtools" / "__pycache__").mkdir()
    (root / "ibtools" / "__pycache__" / "engine.cpython-311.pyc").write_bytes(b"junk")
    (root / "results" / "scratch").mkdir()
    (root / "results" / "scratch" / "unit.npz").write_bytes(b"junk")
    (root / "results" / "paper" / "unit.npz.partial").write_bytes(b"junk")
    (root / "book" / ".ipynb_checkpoints").mkdir()
    (root / "book" / ".ipynb_checkpoints" / "01-checkpoint.ipynb").write_text("{}")
    assert bb.sources_hash(root=root) == before
    # every kind of source does
    for path, text in [("book/01.ipynb", '{"cells": []}'), ("ibtools/engine.py", "x = 2\n"),
                       ("results/paper/unit.npz", "changed"), ("_config.yml", "changed"), ("_toc.yml", "changed"),
                       ("requirements.txt", "changed")]:
        old = (root / path).read_bytes()
        (root / path).write_text(text)
        assert bb.sources_hash(root=root) != before, path
        (root / path).write_bytes(old)
    assert bb.sources_hash(root=root) == before
    (root / "book" / "02.ipynb").write_text("{}")  # a new chapter
    assert bb.sources_hash(root=root) != before
    (root / "book" / "02.ipynb").rename(root / "book" / "03.ipynb")  # renamed: same bytes, new path
    assert len({bb.sources_hash(root=root), before}) == 2


def test_a_build_is_fresh_only_for_the_sources_it_was_built_from(bb):
    assert not bb.is_fresh()  # nothing built
    _fake_build(bb, run_id="run-1")
    assert bb.is_fresh()
    assert bb.is_fresh("run-1") and not bb.is_fresh("run-2")  # CI: only this session's build counts
    (bb.ROOT / "book" / "01.ipynb").write_text('{"edited": true}')
    assert not bb.is_fresh()
    (bb.ROOT / "book" / "01.ipynb").write_text("{}")
    assert bb.is_fresh()
    bb.STAMP.write_text("{not json")  # a damaged stamp means: build again
    assert not bb.is_fresh()


def test_execution_cache_is_emptied_when_what_chapters_import_changes(bb):
    bb.CACHE.mkdir(parents=True)
    entry = bb.CACHE / "executed.ipynb"
    entry.write_text("{}")
    key = bb._prepare_cache(fresh=False)  # no key recorded yet: emptied, and the key recorded
    assert not entry.exists() and bb.CACHE_KEY.read_text().strip() == key
    entry.write_text("{}")
    (bb.ROOT / "book" / "01.ipynb").write_text('{"edited": true}')  # chapters: jupyter-cache's own job
    assert bb._prepare_cache(fresh=False) == key and entry.exists()
    assert bb._prepare_cache(fresh=True) == key and not entry.exists()  # FRESH=1 / CI
    entry.write_text("{}")
    (bb.ROOT / "ibtools" / "engine.py").write_text("x = 3\n")  # the package changed
    assert bb._prepare_cache(fresh=False) != key and not entry.exists()
    assert bb.CACHE_KEY.read_text().strip() != key


def _fake_jupyter_book(bb, tmp_path, fail=False):
    """A stand-in for jupyter-book that writes an index.html (or fails) and counts its calls."""
    script = tmp_path / "fake_jb.py"
    script.write_text(
        "import pathlib, sys\n"
        f"calls = pathlib.Path({str(tmp_path / 'calls')!r})\n"
        "calls.write_text(calls.read_text() + 'x' if calls.exists() else 'x')\n"
        f"html = pathlib.Path({str(bb.HTML)!r}); html.mkdir(parents=True, exist_ok=True)\n"
        "(html / 'index.html').write_text('<html></html>')\n"
        "import os; print('threads', os.environ.get('OMP_NUM_THREADS'), os.environ.get('IBTOOLS_THREADS'))\n"
        + ("print('CellTimeoutError: A cell timed out'); sys.exit(1)\n" if fail else ""))
    return [sys.executable, str(script)]


def _calls(tmp_path):
    path = tmp_path / "calls"
    return len(path.read_text()) if path.exists() else 0


def test_one_build_per_session_in_ci_and_reuse_outside(bb, tmp_path, monkeypatch):
    monkeypatch.setattr(bb, "JUPYTER_BOOK", _fake_jupyter_book(bb, tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("IBTOOLS_THREADS", raising=False)
    assert bb.ensure_built(fresh=True, run_id="session-1") == bb.HTML and _calls(tmp_path) == 1
    assert "threads 1 1" in bb.LOG.read_text()  # chapter kernels get one thread
    bb.ensure_built(fresh=True, run_id="session-1")  # the other xdist worker of the same session
    assert _calls(tmp_path) == 1
    bb.ensure_built(fresh=True, run_id="session-2")  # the next CI session builds from scratch
    assert _calls(tmp_path) == 2
    bb.ensure_built(fresh=False, run_id="local")  # locally: any fresh build is reused
    assert _calls(tmp_path) == 2
    (bb.ROOT / "ibtools" / "engine.py").write_text("x = 4\n")
    bb.ensure_built(fresh=False, run_id="local")  # ... until the sources change
    assert _calls(tmp_path) == 3


def test_a_failed_build_says_why_and_leaves_no_stamp(bb, tmp_path, monkeypatch):
    monkeypatch.setattr(bb, "JUPYTER_BOOK", _fake_jupyter_book(bb, tmp_path, fail=True))
    with pytest.raises(RuntimeError, match="(?s)the book build failed.*CellTimeoutError"):
        bb.build()
    assert not bb.STAMP.exists() and not bb.is_fresh()


# -- a real build of a tiny book: what a rebuild re-executes -------------------------------------

def _notebook(code: str) -> str:
    cells = [{"cell_type": "markdown", "id": "0", "metadata": {}, "source": ["# A chapter\n"]},
             {"cell_type": "code", "id": "1", "metadata": {}, "execution_count": None, "outputs": [],
              "source": [code]}]
    return json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}})


def _executed(bb) -> list[str]:
    """The chapters the last build executed (not taken from the cache), from its log."""
    return sorted(line.split(":")[0].rsplit("/", 1)[-1] for line in bb.LOG.read_text().splitlines()
                  if "Executing notebook" in line)


@pytest.mark.slow
def test_a_rebuild_executes_only_the_chapter_whose_code_changed(bb, monkeypatch):
    """Issue 14: "a rebuild after editing one chapter re-executes only that chapter". Three real
    builds of a two-chapter book with the project's build settings (execute_notebooks: cache,
    strict): the first executes both, an edit of one code cell re-executes that chapter only, and
    a change under ibtools/ (what every chapter imports) empties the cache so both run again."""
    root = bb.ROOT
    monkeypatch.delenv("CI", raising=False)
    (root / "book" / "01.ipynb").write_text(_notebook("print(1 + 1)"))
    (root / "book" / "02.ipynb").write_text(_notebook("print(2 + 2)"))
    (root / "book" / "index.md").write_text("# Tiny book\n\nTwo chapters.\n")
    (root / "_config.yml").write_text(
        'title: "Tiny"\nonly_build_toc_files: true\nexclude_patterns: [_build, ".*", "**/.*"]\n'
        "execute:\n  execute_notebooks: cache\n  timeout: 60\n  allow_errors: false\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/index\nchapters:\n- file: book/01\n- file: book/02\n")
    monkeypatch.setattr(bb, "JUPYTER_BOOK", [str(Path(sys.executable).with_name("jupyter-book"))])

    bb.build(quiet=True)
    assert _executed(bb) == ["01.ipynb", "02.ipynb"]
    (root / "book" / "02.ipynb").write_text(_notebook("print(2 + 3)"))
    bb.build(quiet=True)
    assert _executed(bb) == ["02.ipynb"]
    (root / "ibtools" / "engine.py").write_text("x = 2\n")
    bb.build(quiet=True)
    assert _executed(bb) == ["01.ipynb", "02.ipynb"]
    assert (bb.HTML / "book" / "02.html").exists() and bb.is_fresh()
