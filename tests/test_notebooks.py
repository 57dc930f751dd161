"""Every chapter executes under papermill with cheap parameters; bad parameters stop a chapter
in its first cells with one clear message."""

import collections
import re
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from book_rules import bad_alt_text

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(p for p in BOOK.glob("*.ipynb"))

# Cheap settings: small networks counts and epochs. Chapters 4-8 share the same sweep settings so
# that later chapters reuse the units computed by earlier ones (one scratch directory per session).
SWEEP = {"SEEDS": 3, "EPOCHS": 12, "SENSITIVITY": False}
CHEAP = {
    "01_task_and_network": {"EPOCHS": 15, "SEEDS": 2},
    "02_estimators": {"EPOCHS": 10, "GAUSSIAN_SAMPLES": 512, "BATTERY_SAMPLES": 256, "BATTERY_REPEATS": 2},
    "03_one_network": {"EPOCHS": 10},
    "04_initializations": {**SWEEP, "SHOWN": 2},
    "05_activations": {**SWEEP, "ACTIVATIONS": "tanh,relu,elu,softplus,centered_softplus"},
    "06_l2_regularization": {**SWEEP, "L2S": "0,0.015"},
    "07_generalization": {**SWEEP, "ACTIVATIONS": "tanh,relu,elu,softplus,centered_softplus", "L2S": "0,0.015"},
    # the ground-truth columns read stored units only (none at this setting: "not stored"); the
    # book build reads the stored ones, and tests/test_ground_truth_summary.py computes cheap ones
    "08_summary": {**SWEEP, "ACTIVATIONS": "tanh,relu,elu,softplus,centered_softplus", "L2S": "0,0.015"},
    "09_your_own_experiment": {"EPOCHS": 12, "SEEDS": 2},
    # both initialization arms (tanh) and one L2 strength (ReLU), 6 networks each, 30 epochs, EBAB
    # and the exact MI only, computed in the scratch directory (nothing stored is needed)
    "11_compression_and_clustering": {"ARMS": "paper,tishby", "ACTIVATIONS": "tanh", "L2S": "0,0.015", "SEEDS": 6,
                                      "EPOCHS": 30, "ESTIMATORS": "ebab", "SENSITIVITY": False, "COMPUTE_MISSING": True},
    # four activations at 8 and 4 bits, 3 networks, 12 epochs, computed in the scratch directory
    "12_exact_and_quantized": {"BITS": "8,4", "ACTIVATIONS": "tanh,relu,elu,softplus", "SEEDS": 3, "EPOCHS": 12,
                               "COMPUTE_MISSING": True},
    # two noise levels, 2 networks each, 6 epochs, no K > 1 draws (each K costs about K² one-draw
    # estimates), computed in the scratch directory
    "13_noisy_networks": {"NOISE_STDS": "0.1,0.3", "SEEDS": 2, "SENSITIVITY_SEEDS": 2, "EPOCHS": 6, "DEEP_DRAWS": "",
                          "SE_SEEDS": 1, "SE_EPOCH": 5, "COMPUTE_MISSING": True},
    # MNIST-1D at 2000 samples, small widths, EBAB and the exact MI only (adaptive KDE is the slow
    # estimator); the 12-bit comparison at the summary chapter's cheap setting
    "10_beyond_12_bits": {"TASK": "mnist1d:num_samples=2000", "HIDDEN": "10,8,6,4", "SEEDS": 3, "EPOCHS": 12,
                          "ACTIVATIONS": "tanh,relu,elu,softplus,centered_softplus", "L2S": "0,0.015",
                          "ESTIMATORS": "ebab,exact", "TISHBY_SEEDS": 3, "TISHBY_EPOCHS": 12, "SENSITIVITY": False},
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("scratch_results")


def _run(path, out, parameters):
    return pm.execute_notebook(str(path), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False, log_output=False)


def test_every_chapter_has_cheap_parameters():
    assert {p.stem for p in CHAPTERS} == set(CHEAP)


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executes(path, tmp_path, scratch):
    params = dict(CHEAP[path.stem])
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    if "SCRATCH_DIR" in cell.source:
        params["SCRATCH_DIR"] = str(scratch)
    for name in params:  # every override must be a knob of the chapter's parameters cell
        assert f"\n{name} =" in "\n" + cell.source, f"{name} is not a parameter of {path.name}"
    out = _run(path, tmp_path / path.name, params)
    errors = [o for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert images >= 1, "every chapter draws figures"
    # every glue key the text uses is glued, once (the book build warns on both, and a duplicate
    # hides a key glued from the wrong loop variable)
    glued = collections.Counter(o["metadata"]["scrapbook"]["name"] for c in out.cells if c.cell_type == "code"
                                for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {}))
    used = set(re.findall(r"\{glue(?::text)?\}`([^`:]+)`", "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")))
    assert not [k for k, n in glued.items() if n > 1], f"glued more than once: {[k for k, n in glued.items() if n > 1]}"
    assert used <= set(glued), f"used in the text but never glued: {sorted(used - set(glued))}"
    if path.stem == "05_activations":  # the default study is the re-run, with its one-scale arm
        text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for c in out.cells
                         if c.cell_type == "code" for o in c.get("outputs", []))
        assert "one scale (gain 1)" in text and "failed networks in the one-scale arm" in text
        assert "results/rerun" in text  # the provenance footer names the re-run's directory
    if path.stem == "10_beyond_12_bits":  # the verdicts were set beside the 12-bit task's
        text = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "same verdict as on the 12-bit task" in text
    if path.stem == "13_noisy_networks":  # the analysis ran to its end on what it computed
        text = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "read 2 noise level(s) from 2 unit(s), 4 networks" in text


@pytest.mark.slow
def test_chapter_reads_the_first_study(tmp_path, scratch):
    """Chapter 5 with STUDY="paper" at its cheap setting: the first study's configuration,
    computed in the scratch directory, without the re-run's second initialization arm. (The
    chapters' default is the re-run, which test_chapter_executes covers with its one-scale arm.)"""
    path = BOOK / "05_activations.ipynb"
    out = _run(path, tmp_path / path.name, {**CHEAP[path.stem], "STUDY": "paper", "SCRATCH_DIR": str(scratch)})
    errors = [o for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for c in out.cells
                     if c.cell_type == "code" for o in c.get("outputs", []))
    assert 'run this chapter with STUDY = "rerun"' in text and "one scale (gain 1)" not in text
    assert "results/paper" in text  # the provenance footer names the first study's directory


def test_chapters_default_to_the_rerun():
    for stem in ("04_initializations", "05_activations", "06_l2_regularization", "07_generalization", "08_summary"):
        nb = nbformat.read(BOOK / f"{stem}.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert '\nSTUDY = "rerun"' in "\n" + cell.source, stem


def test_notebook_skeleton():
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), path.name
        assert "colab.research.google.com/github/" in first.source and path.name in first.source
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0] <= 3, f"{path.name}: one parameters cell, right after setup"
        setup = nb.cells[tagged[0] - 1].source
        assert "google.colab" in setup and "REPO_URL" in setup
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs must be stripped"
        assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
@pytest.mark.parametrize(
    "chapter, params, message",
    [
        ("05_activations", {"ACTIVATIONS": "tanh,gelu"}, "unknown activation 'gelu'"),
        ("04_initializations", {"EPOCHS": -3}, "epochs must be an integer >= 1"),
        ("04_initializations", {"ESTIMATOR": "ksg"}, "unknown study estimator 'ksg'"),
        ("01_task_and_network", {"SEEDS": 0}, "SEEDS must be an integer >= 1"),
        ("06_l2_regularization", {"L2S": "0.01,0.1"}, "L2S must include 0"),
        ("02_estimators", {"BATTERY_REPEATS": 1}, "BATTERY_REPEATS must be an integer >= 2"),
        ("05_activations", {"STUDY": "rerun2"}, "STUDY must be one of ('paper', 'rerun'), got 'rerun2'"),
        ("12_exact_and_quantized", {"SHOWN_ACTIVATION": "swish", "ACTIVATIONS": "tanh,relu"},
         "SHOWN_ACTIVATION must be one of ACTIVATIONS"),
        ("12_exact_and_quantized", {"BITS": "4"}, "the verdicts are decided at 8 bits"),
        ("12_exact_and_quantized", {"ESTIMATORS": "ebab,ksg"}, "unknown study estimator"),
        ("12_exact_and_quantized", {"ACTIVATIONS": "sigmoidal"}, "unknown activation"),
        ("10_beyond_12_bits", {"TASK": "cifar"}, "unknown task 'cifar'"),
        ("10_beyond_12_bits", {"ESTIMATORS": "ebab,ksg"}, "unknown study estimator"),
        ("10_beyond_12_bits", {"ESTIMATOR": "akde", "ESTIMATORS": "ebab,exact"}, "must be one of ESTIMATORS"),
        ("10_beyond_12_bits", {"L2S": "0.01,0.1"}, "needs 0 and at least one nonzero"),
        ("10_beyond_12_bits", {"TISHBY_STUDY": "first"}, "TISHBY_STUDY must be one of"),
        ("10_beyond_12_bits", {"ESTIMATOR": "exact", "ESTIMATORS": "ebab,exact"}, "R1 needs EBAB"),
    ],
)
def test_bad_parameters_stop_early_with_one_message(chapter, params, message, tmp_path):
    path = BOOK / f"{chapter}.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as info:
        _run(path, tmp_path / "out.ipynb", params)
    err = info.value
    assert err.ename == "ParameterError" and message in err.evalue
    assert len(err.traceback) == 1, "the message, not a traceback"
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = next(i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.get("outputs", [])))
    # code cells: setup, parameters, injected parameters, then the cell that checks them
    assert failed <= 3, "stops in its first cells"


@pytest.mark.slow
def test_the_beyond_chapter_runs_on_another_registered_task(tmp_path):
    """Issue 13 promises the chapter on any registered task: scikit-learn's 8x8 digits (64 inputs,
    1797 samples), cheaply and without the 12-bit comparison, to its verdicts."""
    path = BOOK / "10_beyond_12_bits.ipynb"
    params = dict(CHEAP[path.stem], TASK="digits", ACTIVATIONS="tanh,relu", COMPARE_12BIT=False,
                  SCRATCH_DIR=str(tmp_path / "scratch"))
    out = _run(path, tmp_path / path.name, params)
    code = [c for c in out.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
    text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    assert "on digits:" in text and "digits: 2 activations" in text


@pytest.mark.slow
@pytest.mark.parametrize("params, message", [
    ({"NOISE_STDS": "0.2"}, "noise levels must be among"),
    ({"NOISE_STDS": "0.3"}, "the verdicts are decided at σ = 0.1"),
    ({"DEEP_DRAWS": "1"}, "deep_draws must be"),
])
def test_noisy_chapter_stops_early_on_bad_parameters(params, message, tmp_path):
    """Chapter 13 at its cheap setting with one bad parameter (its checks sit with the reading of
    the units, so the cheap setting keeps a missed check from computing the stored study)."""
    path = BOOK / "13_noisy_networks.ipynb"
    params = dict(CHEAP[path.stem], SCRATCH_DIR=str(tmp_path / "scratch"), **params)
    params.update({"EPOCHS": 3, "SEEDS": 2})
    with pytest.raises(pm.PapermillExecutionError) as info:
        _run(path, tmp_path / "out.ipynb", params)
    err = info.value
    assert err.ename == "ParameterError" and message in err.evalue
    assert len(err.traceback) == 1, "the message, not a traceback"


@pytest.mark.parametrize("path", CHAPTERS + sorted((BOOK / "drafts").glob("*.ipynb")), ids=lambda p: p.stem)
def test_figure_alt_text_is_not_a_file_path(path):
    """The rendered-book test (tests/test_book_html.py) fails alt text with a slash or an image
    suffix as a file path; the same rule on the sources, without building the book."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        alt = cell.metadata.get("mystnb", {}).get("image", {}).get("alt")
        if alt is not None:
            assert not bad_alt_text(alt), (path.name, alt)


def test_the_alt_text_rule_flags_paths_and_blanks_only():
    for bad in (None, "", "  ", "held n/t", "figure.png", "a\\b", "Plane.SVG"):
        assert bad_alt_text(bad), bad
    for good in ("Information plane of 50 ReLU networks, coloured by epoch", "Compression (bits) per layer, 2.5 png-free"):
        assert not bad_alt_text(good), good


@pytest.mark.parametrize("path", CHAPTERS + sorted((BOOK / "drafts").glob("*.ipynb")), ids=lambda p: p.stem)
def test_a_figure_cell_displays_only_its_figure(path):
    """myst-nb gives a cell's figure name and caption to every displayed output of the cell, so a
    table or Markdown displayed beside the figure makes a second target of the same name, and the
    strict build (-W) fails ("Duplicate explicit target name"). Printed text is not a display."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.metadata.get("mystnb", {}).get("figure"):
            shown = [w for w in ("display(", "readable(", "Markdown(") if w in cell.source]
            assert not shown, f"{path.name} cell {i} (figure {cell.metadata['mystnb']['figure'].get('name')}) " \
                              f"also displays {shown}: move that to the next cell"
