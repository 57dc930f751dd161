"""Tables for readers (ibtools.tables) and the chapters' provenance footer (ibtools.chapters)."""

import numpy as np
import pandas as pd
import pytest

from ibtools.chapters import PAPER_URL, provenance_footer, provenance_markdown
from ibtools.tables import human_header, readable


def _frame():
    return pd.DataFrame(
        {"final_ixt_mean": np.array([164.729996, 2.5], dtype=np.float32), "n": [792.0, 3.0],
         "p": [3.2e-5, 0.2], "label": ["a", "b"]},
        index=pd.Index([0.0, 0.015], name="l2"),
    )


def test_readable_headers_units_counts_and_p_values():
    html = readable(_frame(), headers={"final_ixt_mean": "final I(X;T), mean"}, bits=["final_ixt_mean"],
                    p_values=["p"]).to_html()
    assert "final I(X;T), mean (bits)" in html and "final_ixt_mean" not in html
    assert ">164.73<" in html and "164.729996" not in html       # float32 noise gone
    assert ">792<" in html and "792.0" not in html               # whole numbers are counts
    assert ">3.2e-05<" in html and ">2.0e-01<" in html           # p-values never 0.000
    assert ">0.015<" in html and ">0<" in html                   # a float index as written, not 0.0000
    shares = readable(pd.DataFrame({"share": [0.6, 0.125]}), percent=["share"]).to_html()
    assert ">60 %<" in shares and ">12 %<" in shares
    two_levels = pd.DataFrame({"failed": [0, 2]}, index=pd.MultiIndex.from_tuples(
        [("relu", 0.0), ("relu", 0.0001)], names=["activation", "l2"]))
    html = readable(two_levels).to_html()
    assert ">0.0001<" in html and ">0<" in html and "0.000000" not in html  # float levels as written too
    assert "activation" in html and ">relu<" in html


def test_readable_flattens_a_multiindex_and_leaves_data_alone():
    df = pd.DataFrame({("train_acc", "mean"): [0.91234], ("train_acc", "std"): [0.01]})
    before = df.copy()
    html = readable(df, precision=3).to_html()
    assert "train acc, mean" in html and "train acc, std" in html and ">0.912<" in html
    pd.testing.assert_frame_equal(df, before)
    assert human_header(("i_xt", "")) == "i xt"


@pytest.mark.parametrize("kwargs, error, message", [
    ({"bits": ["nope"]}, KeyError, "not in the table"),
    ({"precision": -1}, ValueError, "precision must be an integer >= 0"),
    ({"headers": {"n": "x", "p": "x"}}, ValueError, "same header"),
])
def test_readable_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        readable(_frame(), **kwargs)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        readable([1, 2])


def test_provenance_footer_names_paper_versions_commit_and_sources(tmp_path):
    class Run:
        meta = {"git_commit": "0123456789abcdef0123456789abcdef01234567-dirty", "created": "2026-11-25T14:38:29+0000",
                "machine": "Linux x86_64, 2 CPUs", "wall_time_s": 7200.0}

    text = provenance_markdown([Run(), Run()], tmp_path / "results" / "paper", computed_here="nothing")
    assert PAPER_URL in text
    assert "torch " in text and "numpy " in text and "ibtools " in text
    assert "2 stored or computed runs" in text and "`0123456789ab-dirty`" in text and "2026-11-25" in text
    assert "4.0 CPU-hours" in text and "Computed while the page was built: nothing." in text
    assert str(tmp_path) not in text  # no absolute path of the machine that built the page


def test_provenance_footer_is_one_paragraph_of_markdown():
    shown = provenance_footer(results_dir="results/paper").data
    assert shown.startswith("**Provenance.**") and "\n" not in shown  # no rule: a transition in an output breaks docutils


def test_exact_changes_markdown_pivots_layers():
    import pandas as pd

    from ibtools.tables import exact_changes_markdown

    ch = pd.DataFrame({"activation": ["relu", "relu", "tanh", "tanh"], "l2": 0.0, "layer": [1, 2, 1, 2],
                       "networks": 4, "changed": [0.0, 0.5, 0.0, 0.25], "lowest": [12.0, 3.0, 12.0, 9.5],
                       "final": [12.0, 8.0, 12.0, 11.0]})
    text = exact_changes_markdown(ch, ["h1", "softmax"])
    assert "| relu " in text and "50%; 3.00" in text and "25%; 9.50" in text and "softmax" in text
    with pytest.raises(ValueError, match="index must be"):
        exact_changes_markdown(ch, ["h1", "softmax"], index="seed")
