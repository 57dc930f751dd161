"""The book's estimator settings are defined once (ibtools.settings), carry the labels of the stored
results, and are not spelled out by hand elsewhere."""

import json
import re
from pathlib import Path

from ibtools import settings, study
from ibtools.config import EstimatorSpec

ROOT = Path(__file__).resolve().parents[1]


def _stored_labels() -> set[str]:
    return {label for p in (ROOT / "results" / "paper").glob("*.json") for label in json.loads(p.read_text())["estimators"]}


def test_settings_carry_the_stored_labels():
    stored = _stored_labels()
    assert stored, "no stored results under results/paper"
    specs = {name: getattr(settings, name) for name in settings.__all__ if isinstance(getattr(settings, name), EstimatorSpec)}
    assert len(specs) == 12
    # every setting is recorded in the stored study, under exactly its label
    missing = {name: s.label for name, s in specs.items() if s.label not in stored}
    assert not missing, f"settings whose label no stored result carries: {missing}"
    assert settings.EBAB.label == "ebab(n_bins=30)" and settings.AKDE.label == "akde(alpha=0.01)"
    # the bare default spells the same computation differently: a different setting to the tables
    assert EstimatorSpec("ebab").label != settings.EBAB.label


def test_study_is_built_from_the_settings():
    assert study.MAIN_ESTIMATORS == (settings.EBAB, settings.AKDE)
    assert study.ESTIMATOR_NAMES["ebab"] == settings.EBAB.label
    assert settings.EBAB in study.SINGLE_NETWORK_ESTIMATORS and settings.NETWORK_RANGE in study.SINGLE_NETWORK_ESTIMATORS
    assert study.snapshot_config().estimators == (settings.EBAB,)


def test_cli_study_value_is_the_settings():
    """``--estimators study`` records the study's main settings, under their stored labels."""
    from ibtools import cli

    args = cli.build_parser().parse_args(["run", "--estimators", "study", "akde", "--out", "x"])
    specs = cli._flatten(args.estimators)
    assert specs == (settings.EBAB, settings.AKDE, EstimatorSpec("akde"))
    assert specs[:2] == study.study_estimators(sensitivity=False)


def test_no_hand_written_labels_of_the_settings():
    """Chapters, modules and scripts name a setting through ibtools.settings, not by its label."""
    labels = {s.label for s in vars(settings).values() if isinstance(s, EstimatorSpec) and s.params}
    pattern = re.compile("|".join(re.escape(f'"{label}"') + "|" + re.escape(f"'{label}'") for label in labels))
    # settings.py defines them; config.py's docstring shows what a label looks like
    files = [p for p in (ROOT / "ibtools").rglob("*.py") if p.name not in ("settings.py", "config.py")]
    files += list((ROOT / "scripts").glob("*.py"))
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in files for m in pattern.finditer(p.read_text())]
    for nb in (ROOT / "book").glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                found += [f"{nb.relative_to(ROOT)}: {m.group(0)}" for m in pattern.finditer("".join(cell["source"]))]
    assert not found, "estimator labels written by hand (use ibtools.settings):\n" + "\n".join(found)
