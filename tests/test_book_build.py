"""scripts/build_book.py's bookkeeping (no build): the sources hash that decides whether the tests
may reuse ``_build/html``, and the key that decides whether the execution cache is still valid."""

import importlib.util
import json
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
                        "CACHE": build / ".jupyter_cache", "CACHE_KEY": build / ".jupyter_cache" / "inputs.key"}.items():
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
