"""Figures of the book, in one style. Every helper takes ``ax=None`` and returns the axes."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from .claims import NOT, PARTLY, REPRODUCED

__all__ = [
    "use_style",
    "epoch_norm",
    "epoch_colorbar",
    "plot_information_plane",
    "plot_layer_curves",
    "plot_history",
    "plot_band",
    "plot_mean_ci",
    "EPOCH_CMAP",
    "plot_estimator_grid",
    "plot_plane_grid",
    "plot_verdicts",
    "ACTIVATION_STYLE",
    "activation_style",
    "LAYER_MARKERS",
    "TEXT_WIDTH_IN",
    "MIN_FONT_PT",
]

STYLE = Path(__file__).with_name("ibtools.mplstyle")
#: Colour map of epochs in information planes (the one of Shwartz-Ziv & Tishby's figures).
EPOCH_CMAP = "gnuplot"
#: Width of the book's text column in figure inches (figures are drawn at most this wide so that
#: they are shown at their natural size; ``tests/test_book_html.py`` checks it on the built pages).
TEXT_WIDTH_IN = 7.0
#: Smallest font size (points) of any text in the book's figures (style file and helpers).
MIN_FONT_PT = 9
#: Colour and marker of each activation, one mapping for every chapter: the paper's eight
#: activations get eight colours *and* eight markers, so that they stay apart in grey scale and for
#: colour-blind readers; the extras reuse grey with other markers. Colours: Okabe & Ito's
#: colour-blind-safe palette, its yellow (illegible on white) replaced by Paul Tol's wine #882255;
#: every pair differs by CIEDE2000 >= 10 for normal vision and under simulated protanopia,
#: deuteranopia and tritanopia (tests/test_plotting.py; the earlier brown #8C6D1F for swish was
#: 2.5 from softplus's vermillion under protanopia).
ACTIVATION_STYLE = {
    "tanh": ("#000000", "o"),
    "relu": ("#E69F00", "s"),
    "abs": ("#56B4E9", "^"),
    "prelu": ("#009E73", "D"),
    "elu": ("#0072B2", "v"),
    "softplus": ("#D55E00", "P"),
    "centered_softplus": ("#CC79A7", "X"),
    "swish": ("#882255", "*"),
    "sigmoid": ("#7F7F7F", "<"),
    "softsign": ("#7F7F7F", ">"),
    "linear": ("#7F7F7F", "h"),
}
#: Markers of layers 1, 2, ... in information planes (colour there means epoch).
LAYER_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Axis labels used throughout.
IXT_LABEL = "I(X;T) (bits)"
ITY_LABEL = "I(T;Y) (bits)"


def use_style() -> None:
    """Apply the book's matplotlib style (no effect on import; call it in a setup cell)."""
    plt.style.use(str(STYLE))


def activation_style(name: str) -> dict:
    """Line/marker keywords for an activation: ``color``, ``marker`` and a readable ``label``
    (unknown names, e.g. ones registered by a reader, get grey and a diamond)."""
    colour, marker = ACTIVATION_STYLE.get(name, ("#4D4D4D", "d"))
    return {"color": colour, "marker": marker, "label": name.replace("_", " ")}


def epoch_norm(max_epoch: int) -> LogNorm:
    """Logarithmic colour scale for epochs 0..max_epoch (epoch e is drawn at e + 1)."""
    return LogNorm(vmin=1, vmax=max(2, int(max_epoch) + 1))


def epoch_colorbar(ax, max_epoch: int, cmap: str = EPOCH_CMAP, label: str = "epoch + 1", **kw):
    """Add an epoch colour bar next to ``ax`` (or a list of axes); returns the colour bar.

    The scale is logarithmic in epoch + 1 (epoch 0, the initialization, is drawn at 1), and the
    ticks say so: 1, 10, 100, ... with no "0" on a log axis."""
    sm = mpl.cm.ScalarMappable(norm=epoch_norm(max_epoch), cmap=cmap)
    fig = (ax[0] if isinstance(ax, (list, tuple, np.ndarray)) else ax).figure
    cbar = fig.colorbar(sm, ax=ax, pad=0.02, **kw)
    ticks = [t for t in (1, 10, 100, 1000, 10000, 100000) if t <= max_epoch + 1]
    cbar.set_ticks(ticks)
    cbar.set_ticklabels([f"{t:g}" for t in ticks])
    cbar.minorticks_off()
    cbar.set_label(label + " (log scale)")
    return cbar


def layer_legend(target, layer_names, *, loc="outside lower center", ncol=None, **kw):
    """A legend of the layer markers of information planes (grey markers, one per layer) on an
    axes or a figure; returns the legend."""
    handles = [mpl.lines.Line2D([], [], ls="", marker=LAYER_MARKERS[i % len(LAYER_MARKERS)], color="0.3",
                                markersize=6, label=name) for i, name in enumerate(layer_names)]
    if isinstance(target, mpl.figure.Figure):
        return target.legend(handles=handles, loc=loc, ncol=ncol or len(handles), title="layer", **kw)
    return target.legend(handles=handles, ncol=ncol or 2, title="layer", **kw)


def plot_information_plane(
    epochs,
    i_xt,
    i_ty,
    ax=None,
    *,
    layer_names=None,
    cmap: str = EPOCH_CMAP,
    max_epoch: int | None = None,
    connect_layers: bool = True,
    colorbar: bool = True,
    marker_size: float = 14,
    title: str | None = None,
    legend: bool = True,
):
    """Information plane: one point per (epoch, layer), coloured by epoch.

    Parameters
    ----------
    epochs : array (E,)
    i_xt, i_ty : arrays (E, L)
        I(X;T) and I(T;Y) in bits for E epochs and L layers; NaN entries are skipped.
    layer_names : sequence of str, optional
        Layer names; with ``legend=True`` they go into a legend of the layer markers
        (each layer has its own marker, colour is epoch).
    connect_layers : bool
        Join the layers of each epoch with a faint line (as in Shwartz-Ziv & Tishby).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    epochs = np.asarray(epochs)
    i_xt, i_ty = np.atleast_2d(np.asarray(i_xt, float)), np.atleast_2d(np.asarray(i_ty, float))
    if i_xt.shape != i_ty.shape or i_xt.shape[0] != epochs.size:
        raise ValueError(f"i_xt {i_xt.shape} and i_ty {i_ty.shape} must both be (len(epochs)={epochs.size}, n_layers)")
    max_epoch = int(epochs.max()) if max_epoch is None else max_epoch
    norm = epoch_norm(max_epoch)
    colours = plt.get_cmap(cmap)(norm(epochs + 1))
    if connect_layers:
        step = max(1, epochs.size // 60)
        for e in range(0, epochs.size, step):
            ok = np.isfinite(i_xt[e]) & np.isfinite(i_ty[e])
            ax.plot(i_xt[e, ok], i_ty[e, ok], color=colours[e], alpha=0.12, lw=0.8, zorder=1)
    for layer in range(i_xt.shape[1]):
        ok = np.isfinite(i_xt[:, layer]) & np.isfinite(i_ty[:, layer])
        ax.scatter(i_xt[ok, layer], i_ty[ok, layer], c=colours[ok], s=marker_size, edgecolors="none", zorder=2,
                   marker=LAYER_MARKERS[layer % len(LAYER_MARKERS)])
    if layer_names is not None and legend:
        layer_legend(ax, layer_names, loc="lower right", fontsize=MIN_FONT_PT)
    ax.set_xlabel(IXT_LABEL)
    ax.set_ylabel(ITY_LABEL)
    if title:
        ax.set_title(title)
    if colorbar:
        epoch_colorbar(ax, max_epoch, cmap)
    return ax


def plot_band(x, mean, low, high, ax=None, *, label=None, color=None, logx: bool = True, **line_kw):
    """A mean curve with a shaded band (e.g. a 95 % confidence interval)."""
    ax = ax or plt.gca()
    x = np.asarray(x, float)
    xs = x + 1 if logx else x
    (line,) = ax.plot(xs, mean, label=label, color=color, **line_kw)
    ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, lw=0)
    if logx:
        ax.set_xscale("log")
    return ax


def plot_mean_ci(x, mean, low, high, ax=None, *, connect: bool = False, label=None, color=None, marker: str = "o",
                 capsize: float = 2, **kw):
    """Means with their confidence intervals as points with error bars: one point per ``x``.

    ``mean``, ``low`` and ``high`` are equal-length arrays (or scalars) with ``low <= mean <= high``,
    e.g. from :func:`ibtools.analysis.mean_ci` (bounds of a 95 % interval, in the data's units).
    ``connect=True`` joins the points with a line (a quantity along an ordered axis such as L2
    strength). Extra keywords go to ``matplotlib.axes.Axes.errorbar`` (``ms``, ``zorder``...).

    Raises
    ------
    ValueError
        If the arrays differ in length or an interval does not contain its mean (a swapped
        ``low``/``high`` would otherwise draw a wrong bar silently).
    """
    ax = ax or plt.gca()
    x, mean, low, high = (np.atleast_1d(np.asarray(v, float)) for v in (x, mean, low, high))
    if not (x.shape == mean.shape == low.shape == high.shape) or x.ndim != 1:
        raise ValueError(f"x, mean, low and high must be 1-D and of one length, got shapes "
                         f"{x.shape}, {mean.shape}, {low.shape}, {high.shape}")
    below, above = mean - low, high - mean
    bad = (below < 0) | (above < 0)  # NaN (an undefined interval) compares False: drawn without a bar
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"interval [{low[i]:g}, {high[i]:g}] at x = {x[i]:g} does not contain its mean {mean[i]:g} "
                         "(expected low <= mean <= high)")
    ax.errorbar(x, mean, yerr=np.vstack([below, above]), ls="-" if connect else "none", marker=marker,
                capsize=capsize, label=label, color=color, **kw)
    return ax


def plot_layer_curves(epochs, values, ax=None, *, layer_names=None, ylabel: str = IXT_LABEL, low=None, high=None,
                      logx: bool = True, cmap: str = "viridis"):
    """One curve per layer against epoch (log axis at epoch + 1), with optional bands.

    ``values``, ``low`` and ``high`` are (E, L) arrays.
    """
    ax = ax or plt.gca()
    values = np.asarray(values, float)
    L = values.shape[1]
    colours = plt.get_cmap(cmap)(np.linspace(0, 0.9, L))
    for layer in range(L):
        name = layer_names[layer] if layer_names is not None else f"layer {layer + 1}"
        if low is not None:
            plot_band(epochs, values[:, layer], low[:, layer], high[:, layer], ax, label=name, color=colours[layer], logx=logx)
        else:
            xs = np.asarray(epochs, float) + (1 if logx else 0)
            ax.plot(xs, values[:, layer], label=name, color=colours[layer])
            if logx:
                ax.set_xscale("log")
    ax.set_xlabel("epoch + 1" if logx else "epoch")
    ax.set_ylabel(ylabel)
    return ax


def plot_history(history, ax=None, *, metric: str = "acc", logx: bool = True):
    """Train and test curves (mean over networks with min-max range) from a history table
    (:meth:`ibtools.results.RunResult.history_table`). ``metric`` is ``"acc"`` or ``"loss"``."""
    if metric not in ("acc", "loss"):
        raise ValueError(f"metric must be 'acc' or 'loss', got {metric!r}")
    ax = ax or plt.gca()
    for part, colour in (("train", "C0"), ("test", "C3")):
        col = f"{part}_{metric}"
        g = history.groupby("epoch")[col]
        mean = g.mean()
        if g.size().max() > 1:
            plot_band(mean.index, mean.values, g.min().values, g.max().values, ax, label=part, color=colour, logx=logx)
        else:
            ax.plot(mean.index + (1 if logx else 0), mean.values, label=part, color=colour)
            if logx:
                ax.set_xscale("log")
    ax.set_xlabel("epoch + 1" if logx else "epoch")
    ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy (nats)")
    ax.legend()
    return ax


def plot_estimator_grid(runs: dict, panels: dict, *, max_epoch: int | None = None, network: int = 0):
    """Information planes of single networks (columns) under several estimators (rows), sized
    for the text column, with one epoch colour bar and one legend of the layer markers.

    Parameters
    ----------
    runs : dict
        Row title -> :class:`~ibtools.results.RunResult`, or -> a tuple of results searched in
        order for each panel's estimator label.
    panels : dict
        Column title -> estimator label of the result tables, or a dict row title -> label when
        the label differs between rows.
    network : int
        Which network of each run (index into its seeds).

    Returns
    -------
    matplotlib.figure.Figure
    """
    def find(results, label):
        for r in results if isinstance(results, tuple) else (results,):
            if label in r.mi:
                return r
        raise KeyError(f"no result records {label!r}")

    first = next(iter(runs.values()))
    first = first[0] if isinstance(first, tuple) else first
    max_epoch = int(first.epochs.max()) if max_epoch is None else max_epoch
    n_cols, n_rows = len(runs), len(panels)
    width = min(TEXT_WIDTH_IN, 2.9 * n_cols + 1.2)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, 2.3 * n_rows + 0.8), squeeze=False,
                             sharex=True, sharey=True)
    names = None
    for col, (name, results) in enumerate(runs.items()):
        for row, (title, label) in enumerate(panels.items()):
            if isinstance(label, dict):
                label = label[name]
            r = find(results, label)
            names = r.layer_names
            values = r.mi[label][:, :, network, :]
            keep = np.isfinite(values[:, 0, 0])
            ax = axes[row, col]
            plot_information_plane(r.epochs[keep], values[keep, :, 0], values[keep, :, 1], ax, colorbar=False,
                                   max_epoch=max_epoch, marker_size=9, legend=False)
            ax.set_title(f"{name}: {title}", fontsize=MIN_FONT_PT + 1)
            ax.set_xlim(-0.3, 12.3)
            if col:
                ax.set_ylabel("")
            if row < n_rows - 1:
                ax.set_xlabel("")
    epoch_colorbar(axes.ravel().tolist(), max_epoch, shrink=0.5)
    if names is not None:
        layer_legend(fig, names)
    return fig


def plot_plane_grid(planes: dict, *, max_epoch: int, cols: int = 3, title: str | None = None,
                    layer_names=None, panel_size=None):
    """A grid of information planes sharing axes and one epoch colour bar.

    Parameters
    ----------
    planes : dict
        Panel title -> ``(epochs, i_xt, i_ty)`` with (E, L) arrays (as from
        :func:`ibtools.analysis.plane_arrays`).
    max_epoch : int
        Top of the epoch colour scale.
    cols : int
        Panels per row.
    layer_names : sequence of str, optional
        Names of the layers, for one legend of the layer markers below the grid.
    panel_size : (float, float), optional
        Inches per panel; by default the grid is as wide as the text column.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cols = max(1, min(cols, len(planes)))
    rows = int(np.ceil(len(planes) / cols))
    if panel_size is None:
        panel_size = ((TEXT_WIDTH_IN - 0.9) / cols, 2.2)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols + 0.9, panel_size[1] * rows + 0.9),
                             squeeze=False, sharex=True, sharey=True)
    for ax, (name, (epochs, xt, ty)) in zip(axes.flat, planes.items()):
        plot_information_plane(epochs, xt, ty, ax, colorbar=False, max_epoch=max_epoch, marker_size=6, legend=False)
        ax.set_title(name, fontsize=MIN_FONT_PT + 1)
    for ax in axes.flat[len(planes):]:
        ax.set_axis_off()
    for ax in axes.flat:
        spec = ax.get_subplotspec()
        if spec.colspan.start:
            ax.set_ylabel("")
        if spec.rowspan.stop < rows:
            ax.set_xlabel("")
    epoch_colorbar(axes.ravel().tolist(), max_epoch, shrink=0.6)
    if layer_names is not None:
        layer_legend(fig, layer_names)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


#: Colour and short text of each verdict of :mod:`ibtools.claims`.
VERDICT_STYLE = {REPRODUCED: ("#2a9d5c", "yes"), PARTLY: ("#e9b949", "partly"), NOT: ("#d1495b", "no"),
                 "not testable": ("0.75", "n/t")}


def plot_verdicts(verdicts, ax=None):
    """A map of verdicts: rows are claims, columns are estimator settings (a DataFrame of
    verdict strings, as from :mod:`ibtools.claims`), cells coloured green / amber / red; grey
    "n/t" for "not testable" (:data:`ibtools.ground_truth_verdicts.NOT_TESTABLE`)."""
    ax = ax or plt.gca()
    rows, cols = list(verdicts.index), list(verdicts.columns)
    for i, claim in enumerate(rows):
        for j, col in enumerate(cols):
            colour, short = VERDICT_STYLE.get(verdicts.loc[claim, col], ("0.85", "?"))
            ax.add_patch(mpl.patches.Rectangle((j, i), 0.95, 0.9, color=colour))
            ax.text(j + 0.475, i + 0.45, short, ha="center", va="center", fontsize=MIN_FONT_PT, color="white")
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(len(cols)) + 0.475, cols, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(rows)) + 0.45, rows)
    ax.tick_params(length=0)
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax
