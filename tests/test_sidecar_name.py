"""A stored unit's sidecar cannot relabel its numbers even where the ``.npz`` holds no key
(issue 15, item 3): the units of ``results/paper`` were saved before ``RunResult`` put the config
key inside the ``.npz``, so for them the key that ends the file name (``ResultCache.name``) is what
binds the numbers to their configuration, and ``load_run`` checks it.

Before: editing ``config.activation`` *and* ``config_key`` in a ReLU sidecar made ``load_run``
return ReLU's numbers labelled ELU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ibtools.config import TrainConfig
from ibtools.results import CorruptResultError, load_run
from ibtools.sweep import ResultCache

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "results" / "paper"
RELU = next(PAPER.glob("relu_l2-0_s*.json"), None)

pytestmark = pytest.mark.skipif(RELU is None, reason="results/paper has no ReLU unit at l2 = 0")


@pytest.fixture
def relu_copy(tmp_path):
    """A copy of the stored ReLU unit under its own name, and its original sidecar."""
    for suffix in (".json", ".npz"):
        shutil.copyfile(RELU.with_suffix(suffix), tmp_path / (RELU.stem + suffix))
    return tmp_path / RELU.stem, json.loads(RELU.read_text())


def test_stored_unit_has_no_key_inside_its_npz():
    """The case the file name must cover: the stored npz carries no config key of its own."""
    with np.load(RELU.with_suffix(".npz"), allow_pickle=False) as z:
        assert "config_key" not in z.files


def test_relabelled_stored_unit_is_refused(relu_copy):
    path, original = relu_copy
    run = load_run(path)
    assert run.config.activation == "relu"
    assert ResultCache(path.parent).name(run.config) == path.name  # the name carries the key

    edited = json.loads(json.dumps(original))
    edited["config"]["activation"] = "elu"  # ReLU's numbers labelled ELU ...
    edited["config_key"] = TrainConfig.from_dict(edited["config"]).key()  # ... with a matching key
    path.with_suffix(".json").write_text(json.dumps(edited, indent=1, sort_keys=True))
    with pytest.raises(CorruptResultError, match=r"config is not of its file name \(the name ends in key [0-9a-f]{12}, the config hashes to"):
        load_run(path)


def test_the_limit_a_consistent_forger_who_renames(relu_copy):
    """What the README's threat model says stays open: the same edit, with the files renamed to the
    new key, loads (the npz holds no key and a ReLU's arrays have an ELU's shapes); git history and
    the recompute test on stored units are the defence there."""
    path, original = relu_copy
    edited = json.loads(json.dumps(original))
    edited["config"]["activation"] = "elu"
    edited["config_key"] = key = TrainConfig.from_dict(edited["config"]).key()
    renamed = path.parent / ResultCache(path.parent).name(TrainConfig.from_dict(edited["config"]))
    assert renamed.name.endswith(key[:12])
    renamed.with_suffix(".json").write_text(json.dumps(edited))
    path.with_suffix(".npz").rename(renamed.with_suffix(".npz"))
    assert load_run(renamed).config.activation == "elu"
