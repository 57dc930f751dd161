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


# ---- activation palette and the epoch colour bar (issue 14) -----------------------------------

#: Machado, Oliveira & Fernandes (2009), "A physiologically-based model for simulation of color
#: vision deficiency", severity 1.0: matrices on linear sRGB.
MACHADO_2009 = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
#: Smallest CIEDE2000 difference between the colours of two of the paper's activations, for normal
#: vision and under each simulated deficiency. One unit is about a just-noticeable difference for
#: large patches; for thin lines and 4-pt markers the noticeable difference is several times
#: larger (Stone, Szafir & Setlur 2014), so 10 asks for a difference that is plain at the book's
#: mark sizes. It is the level of Okabe & Ito's palette, designed for colour-blind readers: its
#: closest pairs are 10.9 (tritanopia) to 12.5 (deuteranopia) apart here, and it refuses pairs
#: such as the earlier swish brown #8C6D1F and softplus vermillion (2.5 under protanopia).
MIN_DELTA_E00 = 10.0

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])


def _linear_rgb(colour) -> np.ndarray:
    c = np.asarray(matplotlib.colors.to_rgb(colour))
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(rgb_linear) -> np.ndarray:
    """CIE L*a*b* (D65 white) of a linear sRGB colour."""
    xyz = _SRGB_TO_XYZ @ rgb_linear / (_SRGB_TO_XYZ @ np.ones(3))
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _seen(colour, deficiency=None) -> np.ndarray:
    rgb = _linear_rgb(colour)
    if deficiency is not None:
        rgb = np.clip(MACHADO_2009[deficiency] @ rgb, 0.0, 1.0)
    return _lab(rgb)


def _delta_e00(lab1, lab2) -> float:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005)."""
    (L1, a1, b1), (L2, a2, b2) = lab1, lab2
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360 if c2p else 0.0
    dh = 0.0 if c1p * c2p == 0 else (h2p - h1p + 180) % 360 - 180
    d_big_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar, cp_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_bar, 1 + 0.015 * cp_bar * t
    r_t = (-np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2))))
           * 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7)))
    dl, dc, dh_ = (L2 - L1) / s_l, (c2p - c1p) / s_c, d_big_h / s_h
    return float(np.sqrt(dl**2 + dc**2 + dh_**2 + r_t * dc * dh_))


def test_colour_difference_matches_published_values():
    # Sharma, Wu & Dalal (2005), Table 1, pairs 1-3 and 7 (a neutral pair)
    for lab1, lab2, expected in [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
                                 ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
                                 ((50, 2.8361, -74.0200), (50, 0, -82.7485), 3.4412),
                                 ((50, 0, 0), (50, -1, 2), 2.3669)]:
        assert _delta_e00(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert _seen("#ffffff") == pytest.approx([100, 0, 0], abs=1e-3)
    # a deuteranope sees red and green alike: the simulation brings them close (68 -> < 20)
    assert _delta_e00(_seen("#d62728"), _seen("#2ca02c")) > 60
    assert _delta_e00(_seen("#d62728", "deuteranopia"), _seen("#2ca02c", "deuteranopia")) < 20


def test_paper_activations_have_eight_colours_and_eight_markers():
    from ibtools.activations import PAPER_ACTIVATIONS
    from ibtools.plotting import ACTIVATION_STYLE, activation_style

    styles = [activation_style(a) for a in PAPER_ACTIVATIONS]
    assert len(PAPER_ACTIVATIONS) == 8 and all(a in ACTIVATION_STYLE for a in PAPER_ACTIVATIONS)
    colours = {matplotlib.colors.to_hex(s["color"]) for s in styles}
    markers = {s["marker"] for s in styles}
    assert len(colours) == 8, colours
    assert len(markers) == 8, markers
    assert len({s["label"] for s in styles}) == 8


@pytest.mark.parametrize("deficiency", [None, "protanopia", "deuteranopia", "tritanopia"])
def test_paper_activation_colours_stay_apart_for_colour_blind_readers(deficiency):
    from itertools import combinations

    from ibtools.activations import PAPER_ACTIVATIONS
    from ibtools.plotting import ACTIVATION_STYLE

    from ibtools.plotting import use_style

    def too_close(named: dict) -> dict:
        seen = {k: _seen(c, deficiency) for k, c in named.items()}
        return {f"{a}/{b}": round(_delta_e00(seen[a], seen[b]), 1) for a, b in combinations(named, 2)
                if _delta_e00(seen[a], seen[b]) < MIN_DELTA_E00}

    close = too_close({a: ACTIVATION_STYLE[a][0] for a in PAPER_ACTIVATIONS})
    assert not close, f"under {deficiency or 'normal vision'}, CIEDE2000 < {MIN_DELTA_E00}: {close}"
    with plt.rc_context():
        use_style()
        cycle = [matplotlib.colors.to_hex(c) for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]]
    assert len(set(cycle)) == 8
    close = too_close({c: c for c in cycle})
    assert not close, f"style colour cycle under {deficiency or 'normal vision'}, CIEDE2000 < {MIN_DELTA_E00}: {close}"


@pytest.mark.parametrize("max_epoch", [0, 1, 9, 99, 1499, 7999])
def test_epoch_colorbar_is_log_and_shows_no_zero(max_epoch):
    from ibtools.plotting import epoch_colorbar

    fig, ax = plt.subplots()
    cbar = epoch_colorbar(ax, max_epoch)
    fig.canvas.draw()
    assert cbar.ax.yaxis.get_scale() == "log"
    ticks = cbar.ax.yaxis.get_major_ticks() + cbar.ax.yaxis.get_minor_ticks()
    labelled = [(t.get_loc(), label.get_text()) for t in ticks for label in (t.label1, t.label2)
                if label.get_visible() and label.get_text()]
    plt.close(fig)
    assert labelled, "the colour bar has no tick labels"
    for loc, text in labelled:
        value = float(text.replace("\N{MINUS SIGN}", "-").replace("$", "").replace("\\mathdefault{", "").rstrip("}"))
        assert value != 0, f"tick label {text!r} on a log scale"
        assert value == pytest.approx(loc), f"tick at {loc} labelled {text!r}"  # labels say where they are
