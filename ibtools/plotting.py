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
    "EPOCH_CMAP",
    "plot_estimator_grid",
    "plot_plane_grid",
    "plot_verdicts",
]

STYLE = Path(__file__).with_name("ibtools.mplstyle")
#: Colour map of epochs in information planes (the one of Shwartz-Ziv & Tishby's figures).
EPOCH_CMAP = "gnuplot"
#: Axis labels used throughout.
IXT_LABEL = "I(X;T) (bits)"
ITY_LABEL = "I(T;Y) (bits)"


def use_style() -> None:
    """Apply the book's matplotlib style (no effect on import; call it in a setup cell)."""
    plt.style.use(str(STYLE))


def epoch_norm(max_epoch: int) -> LogNorm:
    """Logarithmic colour scale for epochs 0..max_epoch (epoch e is drawn at e + 1)."""
    return LogNorm(vmin=1, vmax=max(2, int(max_epoch) + 1))


def epoch_colorbar(ax, max_epoch: int, cmap: str = EPOCH_CMAP, label: str = "epoch"):
    """Add an epoch colour bar next to ``ax`` (or a list of axes); returns the colour bar."""
    sm = mpl.cm.ScalarMappable(norm=epoch_norm(max_epoch), cmap=cmap)
    fig = (ax[0] if isinstance(ax, (list, tuple, np.ndarray)) else ax).figure
    cbar = fig.colorbar(sm, ax=ax, pad=0.02)
    ticks = [t for t in (1, 10, 100, 1000, 10000) if t <= max_epoch + 1]
    cbar.set_ticks(ticks)
    cbar.set_ticklabels([str(t - 1) if t == 1 else str(t) for t in ticks])
    cbar.set_label(label + " (log scale)")
    return cbar


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
):
    """Information plane: one point per (epoch, layer), coloured by epoch.

    Parameters
    ----------
    epochs : array (E,)
    i_xt, i_ty : arrays (E, L)
        I(X;T) and I(T;Y) in bits for E epochs and L layers; NaN entries are skipped.
    layer_names : sequence of str, optional
        Labels written next to each layer's last point.
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
        ax.scatter(i_xt[ok, layer], i_ty[ok, layer], c=colours[ok], s=marker_size, edgecolors="none", zorder=2)
        if layer_names is not None and ok.any():
            last = np.flatnonzero(ok)[-1]
            ax.annotate(layer_names[layer], (i_xt[last, layer], i_ty[last, layer]), xytext=(4, -10),
                        textcoords="offset points", fontsize=8, color="0.25")
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
    """Information planes of single networks (rows) under several estimators (columns).

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
    fig, axes = plt.subplots(len(runs), len(panels), figsize=(3.1 * len(panels) + 1, 3.0 * len(runs)),
                             squeeze=False, sharey=True)
    for row, (name, results) in enumerate(runs.items()):
        for col, (title, label) in enumerate(panels.items()):
            if isinstance(label, dict):
                label = label[name]
            r = find(results, label)
            values = r.mi[label][:, :, network, :]
            keep = np.isfinite(values[:, 0, 0])
            ax = axes[row, col]
            plot_information_plane(r.epochs[keep], values[keep, :, 0], values[keep, :, 1], ax, colorbar=False,
                                   max_epoch=max_epoch, marker_size=8,
                                   layer_names=r.layer_names if col == len(panels) - 2 else None)
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlim(-0.3, 12.3)
            if col:
                ax.set_ylabel("")
    epoch_colorbar(axes.ravel().tolist(), max_epoch)
    return fig


def plot_plane_grid(planes: dict, *, max_epoch: int, cols: int = 4, title: str | None = None,
                    layer_names=None, panel_size=(3.2, 3.0)):
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

    Returns
    -------
    matplotlib.figure.Figure
    """
    cols = max(1, min(cols, len(planes)))
    rows = int(np.ceil(len(planes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols + 1, panel_size[1] * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax, (name, (epochs, xt, ty)) in zip(axes.flat, planes.items()):
        plot_information_plane(epochs, xt, ty, ax, colorbar=False, max_epoch=max_epoch, marker_size=6,
                               layer_names=layer_names)
        ax.set_title(name, fontsize=9)
    for ax in axes.flat[len(planes):]:
        ax.set_axis_off()
    for ax in axes.flat:
        spec = ax.get_subplotspec()
        if spec.colspan.start:
            ax.set_ylabel("")
        if spec.rowspan.stop < rows:
            ax.set_xlabel("")
    epoch_colorbar(axes.ravel().tolist(), max_epoch)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


#: Colour and short text of each verdict of :mod:`ibtools.claims`.
VERDICT_STYLE = {REPRODUCED: ("#2a9d5c", "yes"), PARTLY: ("#e9b949", "partly"), NOT: ("#d1495b", "no")}


def plot_verdicts(verdicts, ax=None):
    """A map of verdicts: rows are claims, columns are estimator settings (a DataFrame of
    verdict strings, as from :mod:`ibtools.claims`), cells coloured green / amber / red."""
    ax = ax or plt.gca()
    rows, cols = list(verdicts.index), list(verdicts.columns)
    for i, claim in enumerate(rows):
        for j, col in enumerate(cols):
            colour, short = VERDICT_STYLE.get(verdicts.loc[claim, col], ("0.85", "?"))
            ax.add_patch(mpl.patches.Rectangle((j, i), 0.95, 0.9, color=colour))
            ax.text(j + 0.475, i + 0.45, short, ha="center", va="center", fontsize=8, color="white")
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(len(cols)) + 0.475, cols, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(rows)) + 0.45, rows)
    ax.tick_params(length=0)
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax
