"""Tables for people: a DataFrame formatted for display in a chapter.

:func:`readable` takes the DataFrame a chapter computed and returns a pandas ``Styler`` that shows
it with human headers (no snake_case, no raw MultiIndex), units on information columns
("(bits)"), counts as integers, a fixed number of decimals for everything else (no float32 noise
such as ``164.729996``), shares as percentages and p-values in scientific notation (``3.2e-05``, never ``0.000``). The
numbers themselves are not changed, only how they are shown::

    from ibtools.tables import readable
    readable(summary, headers={"final_ixt_mean": "final I(X;T), mean"},
             bits=["final_ixt_mean"], counts=["n"], p_values=["p"])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .validation import check_int

__all__ = ["readable", "human_header", "BITS", "exact_changes_markdown"]

#: Unit suffix of information columns.
BITS = " (bits)"


def human_header(name) -> str:
    """A header for readers: ``"final_ixt_mean"`` -> ``"final ixt mean"``; a tuple (a MultiIndex
    column such as ``("train_acc", "mean")``) -> ``"train acc, mean"``."""
    if isinstance(name, tuple):
        return ", ".join(human_header(part) for part in name if str(part) != "")
    return str(name).replace("_", " ").strip()


def _as_list(value, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, tuple)):
        return [value]
    if not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a column name or a list of column names, got {value!r}")
    return list(value)


def _is_count(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return False
    if pd.api.types.is_integer_dtype(series):
        return True
    values = series.to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return values.size > 0 and bool(np.all(values == np.round(values))) and bool(np.all(np.abs(values) < 1e12))


def readable(
    df: pd.DataFrame,
    *,
    headers: Mapping | None = None,
    bits: Iterable | None = None,
    counts: Iterable | None = None,
    p_values: Iterable | None = None,
    percent: Iterable | None = None,
    precision: int = 2,
    index_name: str | None = None,
    caption: str | None = None,
):
    """Format ``df`` for readers; returns a ``pandas.io.formats.style.Styler``.

    Parameters
    ----------
    df : pandas.DataFrame
        The table as computed (it is not modified).
    headers : mapping, optional
        Column name (or MultiIndex tuple) -> header shown. Other columns get
        :func:`human_header`.
    bits : column names, optional
        Information columns: their header gets the unit " (bits)" (unless it already names it).
    counts : column names, optional
        Shown as integers. Float columns whose values are all whole numbers are shown as
        integers too.
    p_values : column names, optional
        Shown in scientific notation with two significant digits.
    percent : column names, optional
        Shares between 0 and 1, shown as whole percentages (``0.6`` -> ``60 %``).
    precision : int
        Decimals of every other numeric column. A float index (or a float level of a
        MultiIndex, e.g. L2 strengths) is shown as written (``0.015``, ``0``), not rounded.
    index_name : str, optional
        Header of the index column (default: the humanized index name).
    caption : str, optional
        A caption above the table.

    Raises
    ------
    KeyError
        A column named in ``headers``, ``bits``, ``counts`` or ``p_values`` is not in ``df``.
    ValueError
        ``precision`` is negative or not an integer.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"readable() formats a pandas DataFrame, got {type(df).__name__}")
    check_int(precision, "precision", 0)
    headers = dict(headers or {})
    bits, counts, p_values, percent = (_as_list(v, n) for v, n in ((bits, "bits"), (counts, "counts"),
                                                                   (p_values, "p_values"), (percent, "percent")))
    for what, names in (("headers", headers), ("bits", bits), ("counts", counts), ("p_values", p_values),
                        ("percent", percent)):
        missing = [n for n in names if n not in df.columns]
        if missing:
            raise KeyError(f"{what} names columns that are not in the table: {missing}; columns are {list(df.columns)}")

    shown = df.copy()
    formats = {}
    for col in df.columns:
        series = df[col]
        if col in p_values:
            formats[col] = "{:.1e}"
        elif col in percent:
            formats[col] = lambda v: f"{100 * v:.0f} %"
        elif col in counts or _is_count(series):
            formats[col] = "{:,.0f}"
        elif pd.api.types.is_float_dtype(series):
            formats[col] = "{:.%df}" % precision
    new_names = {}
    for col in df.columns:
        header = str(headers[col]) if col in headers else human_header(col)
        if col in bits and "bit" not in header:
            header += BITS
        new_names[col] = header
    if len(set(new_names.values())) != len(new_names):
        raise ValueError(f"two columns would get the same header: {sorted(new_names.values())}")
    shown.columns = pd.Index([new_names[c] for c in df.columns])
    formats = {new_names[c]: f for c, f in formats.items()}

    if isinstance(shown.index, pd.MultiIndex):
        levels = [shown.index.get_level_values(i) for i in range(shown.index.nlevels)]
        shown.index = pd.MultiIndex.from_arrays(
            [[f"{v:g}" for v in level] if pd.api.types.is_float_dtype(level) else level for level in levels],
            names=[human_header(n) if n is not None else None for n in shown.index.names])
    else:
        name = index_name if index_name is not None else (human_header(shown.index.name) if shown.index.name else None)
        if pd.api.types.is_float_dtype(shown.index):
            shown.index = pd.Index([f"{v:g}" for v in shown.index], name=name)
        else:
            shown.index = shown.index.rename(name)

    styler = shown.style.format(formats, na_rep="–")
    if caption:
        styler = styler.set_caption(caption)
    return styler


def exact_changes_markdown(changes, layer_names, index: str = "activation") -> str:
    """A Markdown table of :func:`ibtools.analysis.exact_information_changes`: one row per
    ``index`` value (``"activation"`` or ``"l2"``), one column per layer, each cell "share of
    networks whose exact I(X;T) changed; its lowest value (bits)"."""
    if index not in ("activation", "l2"):
        raise ValueError(f"index must be 'activation' or 'l2', got {index!r}")
    frame = changes.copy()
    frame["cell"] = [f"{c:.0%}; {lo:.2f}" for c, lo in zip(frame["changed"], frame["lowest"])]
    frame["layer"] = [layer_names[int(i) - 1] for i in frame["layer"]]
    wide = frame.pivot(index=index, columns="layer", values="cell")[[n for n in layer_names if n in set(frame["layer"])]]
    if index == "l2":
        wide.index = [f"{v:g}" for v in wide.index]
    else:
        wide.index = [str(v).replace("_", " ") for v in wide.index]
    header = "activation" if index == "activation" else "L2 strength"
    return wide.reset_index(names=header + " (changed; lowest, bits)").to_markdown(index=False, disable_numparse=True)
