"""Plot helpers: what they draw, and clear errors for bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ibtools.plotting import plot_mean_ci  # noqa: E402


def test_plot_mean_ci_draws_each_interval():
    fig, ax = plt.subplots()
    out = plot_mean_ci([1, 2, 3], [0.5, 1.0, 2.0], [0.2, 0.9, 1.0], [0.7, 1.4, 2.5], ax, label="h1")
    assert out is ax
    container = ax.containers[0]
    line, _caps, (bars,) = container
    assert np.allclose(line.get_ydata(), [0.5, 1.0, 2.0]) and line.get_linestyle() == "None"
    spans = [(seg[0, 1], seg[1, 1]) for seg in bars.get_segments()]
    assert np.allclose(spans, [(0.2, 0.7), (0.9, 1.4), (1.0, 2.5)])
    assert ax.get_legend_handles_labels()[1] == ["h1"]
    plot_mean_ci(4, 1.0, 0.5, 1.5, ax, connect=True)  # scalars; a connected series
    assert ax.containers[1][0].get_linestyle() == "-"
    plt.close(fig)


def test_plot_mean_ci_refuses_bad_intervals():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"does not contain its mean"):
        plot_mean_ci([1, 2], [1.0, 2.0], [0.5, 2.5], [1.5, 3.0], ax)  # low above the mean at x = 2
    with pytest.raises(ValueError, match="one length"):
        plot_mean_ci([1, 2], [1.0], [0.5], [1.5], ax)
    plot_mean_ci([1], [np.nan], [np.nan], [np.nan], ax)  # an undefined interval is drawn without a bar
    plt.close(fig)
