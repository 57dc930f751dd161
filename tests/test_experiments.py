"""The example parameter files in experiments/ run (with fewer epochs and networks)."""

from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "experiments").glob("*.yaml"))
CHEAPER = {"SEEDS": 2, "EPOCHS": 8}


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_experiment_runs(path, tmp_path):
    chapter = ROOT / "book" / (path.stem.split("__")[0] + ".ipynb")
    assert chapter.exists(), f"{path.name} names no chapter"
    params = yaml.safe_load(path.read_text())
    cell = next(c for c in nbformat.read(chapter, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    for name in params:
        assert f"\n{name} =" in "\n" + cell.source, f"{path.name}: {name} is not a parameter of {chapter.name}"
    params.update(CHEAPER, SCRATCH_DIR=str(tmp_path / "scratch"))
    pm.execute_notebook(str(chapter), str(tmp_path / "out.ipynb"), parameters=params, kernel_name="python3",
                        cwd=str(chapter.parent), progress_bar=False)
