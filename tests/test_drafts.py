"""Draft chapters (book/drafts): not in the book yet (excluded from the build, absent from the
table of contents), but held to the chapters' standards: a Colab badge and setup cell, one
``parameters`` cell with every knob, stripped outputs, captioned figures, and a cheap setting at
which the draft executes under papermill (tests/test_notebooks.py covers book/*.ipynb only)."""

from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DRAFTS_DIR = ROOT / "book" / "drafts"
DRAFTS = sorted(DRAFTS_DIR.glob("*.ipynb"))

#: A cheap setting per draft (its parameters at which it executes in seconds); none at present.
CHEAP: dict[str, dict] = {}
#: A sentence each draft prints at its cheap setting (the analysis ran to its end).
EXPECTED_TEXT: dict[str, str] = {}


def _run(path, out, parameters):
    return pm.execute_notebook(str(path), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False, log_output=False)


def _parameters_cell(nb):
    return next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))


def test_every_draft_has_cheap_parameters():
    assert {p.stem for p in DRAFTS} == set(CHEAP)


def test_drafts_are_not_built_into_the_book():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "book/drafts" in config["exclude_patterns"]
    assert "drafts" not in (ROOT / "_toc.yml").read_text()
    assert (DRAFTS_DIR / "README.md").is_file()


def test_draft_skeleton():
    for path in DRAFTS:
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), path.name
        assert "colab.research.google.com/github/" in first.source and f"book/drafts/{path.name}" in first.source
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0] <= 3, f"{path.name}: one parameters cell, right after setup"
        setup = nb.cells[tagged[0] - 1].source
        assert "google.colab" in setup and "REPO_URL" in setup
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code"), "outputs must be stripped"
        assert nb.metadata.kernelspec.name == "python3"
        for name in CHEAP[path.stem]:
            assert f"\n{name} =" in "\n" + _parameters_cell(nb).source, f"{name} is not a parameter of {path.name}"


def test_setup_cell_matches_the_chapters():
    """The Colab part of the setup cell is generated for the chapters (ibtools.booklinks); the
    drafts carry the same text, so moving one into the book needs no edit there."""
    chapter = nbformat.read(ROOT / "book" / "05_activations.ipynb", as_version=4)
    colab = chapter.cells[1].source.partition("import matplotlib.pyplot as plt")[0]
    for path in DRAFTS:
        nb = nbformat.read(path, as_version=4)
        tagged = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        assert nb.cells[tagged - 1].source.startswith(colab), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", DRAFTS, ids=lambda p: p.stem)
def test_draft_executes_cheaply_with_captioned_figures(path, tmp_path):
    params = dict(CHEAP[path.stem], SCRATCH_DIR=str(tmp_path / "scratch"))
    out = _run(path, tmp_path / path.name, params)
    code = [c for c in out.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
    drawn = [c for c in code if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert len(drawn) >= 3, "the draft draws its figures"
    for c in drawn:  # captioned the way the chapters are (tests/test_book_html.py checks them in the book)
        meta = c.metadata.get("mystnb", {})
        assert meta.get("figure", {}).get("caption") and meta.get("figure", {}).get("name"), c.source[:80]
        assert meta.get("image", {}).get("alt"), c.source[:80]
    text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    assert EXPECTED_TEXT[path.stem] in text


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.ipynb")) + DRAFTS, ids=lambda p: p.stem)
def test_papermill_parses_every_parameter(path):
    """papermill reads the parameters cell line by line and silently skips a line it cannot parse
    (e.g. one with a non-ASCII character in its comment), which then shows as an "unknown
    parameter" warning and loses its help text: every assigned name must come back from
    papermill's own inspection, chapters and drafts alike."""
    nb = nbformat.read(path, as_version=4)
    assigned = {line.split("=", 1)[0].strip() for line in _parameters_cell(nb).source.splitlines()
                if "=" in line.split("#", 1)[0] and not line.startswith((" ", "#"))}
    assert set(pm.inspect_notebook(str(path))) == assigned
