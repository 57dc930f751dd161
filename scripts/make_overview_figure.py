"""Draw the README's overview figure from the stored single-network runs of the study.

    python scripts/make_overview_figure.py   (writes book/_static/overview.png)
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from ibtools.plotting import plot_estimator_grid, use_style  # noqa: E402
from ibtools.settings import AKDE, EBAB, KDE_FIXED_NOISE  # noqa: E402
from ibtools.study import PAPER_RESULTS, global_range_config, obtain_run, single_network_config  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "_static" / "overview.png"

use_style()
rows, labels = {}, {}
for activation in ("relu", "tanh"):
    run = obtain_run(single_network_config(activation), PAPER_RESULTS, PAPER_RESULTS, progress=False)
    ranged = obtain_run(global_range_config(run), PAPER_RESULTS, PAPER_RESULTS, progress=False)
    rows[activation] = (run, ranged)
    labels[activation] = ranged.estimator_labels[0]
panels = {"network-wide range": labels, "KDE, σ² = 0.001": KDE_FIXED_NOISE.label, "EBAB": EBAB.label,
          "adaptive KDE": AKDE.label}
fig = plot_estimator_grid(rows, panels)
fig.savefig(OUT, dpi=110)  # text at >= 9 pt stays legible when shown at the text column width
print("wrote", OUT)
