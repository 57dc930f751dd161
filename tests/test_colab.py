"""Colab: badges and the launch button point at the chapters' .ipynb on the repository given in
_config.yml; the install cell installs ibtools (not the pinned torch) only inside Colab."""

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ibtools import booklinks

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def _setup_cell(path):
    nb = json.loads(path.read_text())
    return next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and "google.colab" in "".join(c["source"]))


def test_links_follow_config():
    url, branch = booklinks.repository()
    assert url.startswith("https://github.com/")
    assert booklinks.sync(check=True) == []  # nothing out of sync
    for path in CHAPTERS:
        badge = booklinks.colab_url(url, branch, path.name)
        first = json.loads(path.read_text())["cells"][0]
        assert badge in "".join(first["source"])
        assert f'REPO_URL = "{url}"' in _setup_cell(path)
    readme = (ROOT / "README.md").read_text()
    assert all(booklinks.colab_url(url, branch, p.name) in readme for p in CHAPTERS if p.stem[0].isdigit())
    config = (ROOT / "_config.yml").read_text()
    assert 'colab_url: "https://colab.research.google.com"' in config and "path_to_book" not in config


def test_changing_the_address_in_one_place_moves_every_link(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_*"))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    config = (ROOT / "_config.yml").read_text()
    url, _ = booklinks.repository()
    (tmp_path / "_config.yml").write_text(config.replace(url, "https://github.com/someone/elsewhere"))
    stale = booklinks.sync(book, check=True)
    assert set(stale) == {p.name for p in CHAPTERS} | {"README.md"}
    booklinks.sync(book)
    assert booklinks.sync(book, check=True) == []
    text = "".join(p.read_text() for p in book.glob("*.ipynb")) + (tmp_path / "README.md").read_text()
    assert "someone/elsewhere" in text and url not in text


@pytest.mark.parametrize("path", CHAPTERS[:1] + CHAPTERS[-1:], ids=lambda p: p.stem)
def test_install_cell_in_fake_colab(path, tmp_path, monkeypatch):
    source = _setup_cell(path)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IBTOOLS_RESULTS", raising=False)
    # outside Colab: nothing is installed
    exec(compile(source, "setup", "exec"), {})
    assert calls == []
    # inside Colab (google.colab importable): clone, then install the package from the clone
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(source, "setup", "exec"), {})
    url, _ = booklinks.repository()
    assert calls[0] == ["git", "clone", "--depth", "1", url, "ib-book"]
    assert calls[1][1:] == ["-m", "pip", "install", "-q", "./ib-book"]
    assert "requirements" not in " ".join(calls[1]) and "torch" not in " ".join(calls[1])
    import os

    assert os.environ["IBTOOLS_RESULTS"].endswith("ib-book/results/paper")


def test_package_does_not_pin_torch():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"torch>=' in pyproject and "torch==" not in pyproject
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text()  # exact pins only for the book env
