"""Geometric measures (ibtools.geometry): closed forms, invariances, degenerate layers, bad input;
their online recording (TrainConfig.measures) through save, load and resume; and the rank
correlations of ibtools.tracking on curves with known answers."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from ibtools import geometry as G
from ibtools import tracking as T
from ibtools.config import EstimatorSpec, TrainConfig
from ibtools.engine import train
from ibtools.estimators.binning import ebab_bin_indices
from ibtools.results import load_run, result_paths

ALL = G.measure_names()


def two_clusters(s: float, D: float, n: int = 50):
    """Class 0 at (0, 0) +- (s, 0), class 1 at (D, 0) +- (0, s), n points each (n even)."""
    half = n // 2
    c0 = np.array([[s, 0.0]] * half + [[-s, 0.0]] * half)
    c1 = np.array([[D, s]] * half + [[D, -s]] * half)
    return np.vstack([c0, c1]), np.repeat([0, 1], n)


# -- closed forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("s, D", [(0.1, 1.0), (0.5, 3.0), (2.0, 1.0)])
def test_two_clusters_closed_forms(s, D):
    x, y = two_clusters(s, D)
    # tr W = s^2; tr B = D^2 / 4 (weights 1/2, means at distance D / 2 from the global mean)
    assert G.within_between(x, y) == pytest.approx(4 * s**2 / D**2, rel=1e-12)
    # Sigma_W = diag(s^2/2, s^2/2); Sigma_B^+ along (D, 0): tr(W B^+) = (D^2 s^2 / 2) / (D^4 / 4); / C = 2
    assert G.nc1(x, y) == pytest.approx(s**2 / D**2, rel=1e-12)
    assert G.spread(x) == pytest.approx(s**2 + D**2 / 4, rel=1e-12)
    assert G.distinct_rows(x) == 4.0
    # distinct rows of rank-binned two-valued units: 2 per class
    assert G.distinct_binned_rows_per_class(x, y) == 2.0


def test_scatter_traces_add_up_to_the_total_variance_with_unbalanced_classes(rng):
    x = rng.normal(size=(300, 5)) + np.repeat(rng.normal(size=(3, 5)) * 2, [50, 100, 150], axis=0)
    y = np.repeat([0, 1, 2], [50, 100, 150])
    tr_w, tr_b = G.scatter_traces(x, y)
    assert tr_w + tr_b == pytest.approx(G.spread(x), rel=1e-12)
    assert G.within_between(x, y) == pytest.approx(tr_w / tr_b, rel=1e-12)


def test_nc1_equals_the_pseudo_inverse_formula(rng):
    C, d, n = 3, 6, 400
    y = rng.integers(0, C, n)
    x = rng.normal(size=(n, d)) + 3 * rng.normal(size=(C, d))[y]
    mu_c = np.stack([x[y == c].mean(0) for c in range(C)])
    p = np.bincount(y) / n
    mu = p @ mu_c
    sw = sum(((x[y == c] - mu_c[c]).T @ (x[y == c] - mu_c[c])) for c in range(C)) / n
    sb = sum(p[c] * np.outer(mu_c[c] - mu, mu_c[c] - mu) for c in range(C))
    direct = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10, hermitian=True)) / C
    assert G.nc1(x, y) == pytest.approx(direct, rel=1e-8)


def test_effective_rank_closed_forms(rng):
    # k orthogonal directions with equal spread: singular values equal, effective rank k
    for k in (1, 2, 4):
        x = np.zeros((8, 6))
        for j in range(k):
            x[2 * j, j], x[2 * j + 1, j] = 1.0, -1.0
        assert G.effective_rank(x) == pytest.approx(k, rel=1e-12)
    # singular values (3, 1): q = (3/4, 1/4), erank = exp(H(q))
    x = np.array([[3.0, 0], [-3, 0], [0, 1], [0, -1]])
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert G.effective_rank(x) == pytest.approx(np.exp(h), rel=1e-12)


def test_perfect_collapse_gives_zero():
    x = np.repeat([[0.0, 1.0], [2.0, -1.0]], 10, axis=0)
    y = np.repeat([0, 1], 10)
    assert G.within_between(x, y) == 0.0
    assert G.nc1(x, y) == 0.0
    assert G.distinct_rows(x) == 2.0 and G.distinct_binned_rows_per_class(x, y) == 1.0


# -- degenerate layers: defined values, never NaN -------------------------------------------------


@pytest.mark.parametrize("batched", [False, True])
def test_constant_layer(batched):
    x = np.full((3, 40, 4), 0.7, dtype=np.float32) if batched else np.full((40, 4), 0.7, dtype=np.float32)
    y = np.repeat([0, 1], 20)
    expected = {"within_between": np.inf, "nc1": np.inf, "spread": 0.0, "distinct_rows": 1.0,
                "distinct_binned_rows_per_class": 1.0, "effective_rank": 0.0}
    got = G.compute_measures(x, y)
    for name in ALL:
        assert np.all(np.asarray(got[name]) == expected[name]), name
        if batched:
            assert got[name].shape == (3,)


def test_coinciding_class_means_give_inf():
    # both classes centred at 0 but spread: no between-class separation
    x = np.array([[1.0], [-1.0], [2.0], [-2.0]])
    y = np.array([0, 0, 1, 1])
    assert G.within_between(x, y) == np.inf
    assert G.nc1(x, y) == np.inf
    assert G.spread(x) == pytest.approx(2.5)


# -- invariances ----------------------------------------------------------------------------------


@pytest.fixture
def layer(rng):
    y = rng.integers(0, 2, 300)
    x = np.tanh(rng.normal(size=(300, 5)) + 1.5 * y[:, None] * rng.normal(size=5))
    return x, y


def test_scaling_and_shifting(layer):
    x, y = layer
    a, b = 3.7, -0.4
    for name in ("within_between", "nc1", "effective_rank", "distinct_rows", "distinct_binned_rows_per_class"):
        f = G.MEASURES[name].function
        assert f(a * x + b, y) == pytest.approx(f(x, y), rel=1e-9), name
    assert G.spread(a * x + b) == pytest.approx(a**2 * G.spread(x), rel=1e-12)
    # EBAB uses ranks only: any strictly increasing map of the values keeps its binned rows
    assert G.distinct_binned_rows_per_class(np.arctanh(0.999 * x) ** 3, y) == G.distinct_binned_rows_per_class(x, y)


def test_rotation_invariance(layer, rng):
    x, y = layer
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    for name in ("within_between", "nc1", "spread", "effective_rank"):
        f = G.MEASURES[name].function
        assert f(x @ q, y) == pytest.approx(f(x, y), rel=1e-9), name


def test_permutation_of_samples(layer, rng):
    x, y = layer
    perm = rng.permutation(len(y))
    for name in ALL:
        f = G.MEASURES[name].function
        assert f(x[perm], y[perm]) == pytest.approx(f(x, y), rel=1e-12), name


def test_label_values_do_not_matter(layer):
    x, y = layer
    for name in ("within_between", "nc1", "distinct_binned_rows_per_class"):
        f = G.MEASURES[name].function
        assert f(x, np.where(y == 1, 7, -3)) == f(x, y)


# -- distinct rows: exact -------------------------------------------------------------------------


def test_distinct_rows_exact(rng):
    base = rng.normal(size=(37, 4)).astype(np.float32)
    x = base[rng.permutation(np.arange(500) % 37)]
    assert G.distinct_rows(x) == 37.0
    # one unit in the last place makes a row distinct; -0.0 and 0.0 are the same value
    z = np.zeros((4, 3), dtype=np.float32)
    z[1, 2] = -0.0
    z[2, 0] = np.nextafter(np.float32(0), np.float32(1))
    assert G.distinct_rows(z) == 2.0
    # against numpy's row-unique, many networks at once, with many repeats
    codes = rng.integers(0, 3, size=(7, 600, 5)).astype(np.float64)
    expected = [len(np.unique(c, axis=0)) for c in codes]
    assert G.distinct_rows(codes).tolist() == expected


def test_distinct_rows_survive_hash_collisions(monkeypatch, rng):
    # a hash that maps every row to one value: the exact fallback must still count correctly
    monkeypatch.setattr(G, "_mix", lambda z: np.zeros_like(z))
    codes = rng.integers(0, 4, size=(3, 200, 3)).astype(np.float64)
    assert G.distinct_rows(codes).tolist() == [len(np.unique(c, axis=0)) for c in codes]


def test_distinct_binned_rows_per_class_against_a_loop(rng, task):
    W = rng.normal(size=(4, 12, 5)).astype(np.float32)
    act = np.tanh(np.einsum("nd,sdk->snk", task.X.astype(np.float32), W))
    bins = ebab_bin_indices(act.astype(np.float64), 30)
    expected = [np.mean([len(np.unique(bins[s][task.y == c], axis=0)) for c in (0, 1)]) for s in range(4)]
    assert G.distinct_binned_rows_per_class(act, task.y).tolist() == expected
    # binary units: binning keeps them apart, so per class = the number of distinct patterns
    bits = ((np.arange(64)[:, None] >> np.arange(3)) & 1).astype(float)
    parity = bits.sum(1) % 2
    assert G.distinct_binned_rows_per_class(bits, parity) == 4.0


@pytest.mark.parametrize("name", ALL)
def test_batched_equals_one_network_at_a_time_and_torch_equals_numpy(name, rng):
    x = np.tanh(rng.normal(size=(3, 120, 4))).astype(np.float32)
    y = rng.integers(0, 2, 120)
    f = G.MEASURES[name].function
    batched = f(x, y)
    assert isinstance(batched, np.ndarray) and batched.shape == (3,) and batched.dtype == np.float64
    single = [f(x[k], y) for k in range(3)]
    assert all(isinstance(v, float) for v in single)
    assert np.array_equal(batched, single)
    assert np.array_equal(f(torch.from_numpy(x), torch.from_numpy(y)), batched)


# -- bad input ------------------------------------------------------------------------------------


def test_bad_input_is_refused_clearly(layer):
    x, y = layer
    bad = x.copy()
    bad[3, 1] = np.nan
    for name in ALL:
        with pytest.raises(ValueError, match="NaN or inf"):
            G.MEASURES[name].function(bad, y)
    with pytest.raises(ValueError, match=r"shape \(N, d\) or \(S, N, d\)"):
        G.spread(x[:, 0])
    with pytest.raises(ValueError, match="labels must have shape"):
        G.within_between(x, y[:-1])
    with pytest.raises(ValueError, match="integer class indices"):
        G.within_between(x, np.where(y == 1, "a", "b"))
    with pytest.raises(ValueError, match="at least 2 classes"):
        G.within_between(x, np.zeros(len(y), dtype=int))
    with pytest.raises(ValueError, match="at least 2 classes"):
        G.nc1(x, np.ones(len(y), dtype=int))
    with pytest.raises(ValueError, match="real numeric"):
        G.spread(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="n_bins"):
        G.distinct_binned_rows_per_class(x, y, n_bins=0)
    with pytest.raises(ValueError, match="at least one network, one input and one unit"):
        G.spread(np.zeros((0, 3)))


def test_unknown_measure_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown geometric measure 'entropy'; valid measures are: within_between, nc1"):
        G.get_measure("entropy")
    with pytest.raises(ValueError, match="valid measures are"):
        TrainConfig(measures=("within_between", "clusters"))
    with pytest.raises(ValueError, match="must be a tuple of measure names"):
        TrainConfig(measures="within_between")
    with pytest.raises(ValueError, match="distinct"):
        TrainConfig(measures=("spread", "spread"))


def test_measures_are_left_out_of_the_key_when_empty():
    plain = TrainConfig()
    assert "measures" not in plain.to_dict()
    assert TrainConfig.from_dict(plain.to_dict()) == plain
    with_measures = TrainConfig(measures=["distinct_rows", "within_between"])
    assert with_measures.measures == ("distinct_rows", "within_between")
    assert with_measures.to_dict()["measures"] == ["distinct_rows", "within_between"]
    assert with_measures.key() != plain.key()
    assert TrainConfig.from_dict(json.loads(json.dumps(with_measures.to_dict()))) == with_measures


# -- online recording -----------------------------------------------------------------------------

# 12 epochs; the main schedule (5 points) is 0, 2, 5, 11; epoch 7 is evaluated for its
# activations only, so it has no measures
TINY = TrainConfig(seeds=(3, 1), epochs=12, n_log_points=5, estimators=(EstimatorSpec("ebab"),),
                   record_activations=(5, 7), measures=("within_between", "distinct_rows"))


@pytest.fixture(scope="module")
def tiny_run():
    return train(TINY, progress=False)


def test_recorded_measures_are_the_measures_of_the_recorded_activity(tiny_run, task):
    r = tiny_run
    assert r.config.schedule().tolist() == [0, 2, 5, 11]
    assert r.epochs.tolist() == [0, 2, 5, 7, 11]
    assert set(r.measures) == {"within_between", "distinct_rows"}
    i = list(r.epochs).index(5)
    for layer, act in enumerate(r.activations[5]):
        assert np.array_equal(r.measures["within_between"][i, layer], G.within_between(act, task.y))
        assert np.array_equal(r.measures["distinct_rows"][i, layer], G.distinct_rows(act, task.y))
    j = list(r.epochs).index(7)
    assert np.isnan(r.measures["within_between"][j]).all()
    main = np.isin(r.epochs, [0, 2, 5, 11])
    for values in r.measures.values():
        assert values.shape == (5, 6, 2) and values.dtype == np.float64
        assert np.isfinite(values[main]).all()
    assert (r.measures["distinct_rows"][main] >= 1).all() and (r.measures["distinct_rows"][main] <= 4096).all()


def test_measure_table(tiny_run):
    df = tiny_run.measure_table()
    assert list(df.columns) == ["activation", "l2", "seed", "epoch", "layer", "layer_name", "measure", "value", "diverged"]
    assert len(df) == 2 * 4 * 6 * 2  # measures x main-schedule epochs x layers x networks
    assert set(df.epoch) == {0, 2, 5, 11} and set(df.seed) == {1, 3} and not df.diverged.any()
    row = df[(df.measure == "distinct_rows") & (df.seed == 1) & (df.epoch == 11) & (df.layer == 2)]
    assert row.value.item() == tiny_run.measures["distinct_rows"][4, 1, 1]
    assert len(tiny_run.measure_table("within_between")) == 4 * 6 * 2
    with pytest.raises(KeyError, match="no measure 'spread'"):
        tiny_run.measure_table("spread")


def test_measures_survive_save_and_load(tiny_run, tmp_path):
    tiny_run.save(tmp_path / "run")
    back = load_run(tmp_path / "run", expected=TINY)
    assert list(back.measures) == list(TINY.measures)
    for name in TINY.measures:
        assert np.array_equal(back.measures[name], tiny_run.measures[name], equal_nan=True)
    pd.testing.assert_frame_equal(back.measure_table(), tiny_run.measure_table())
    with np.load(result_paths(tmp_path / "run")[0], allow_pickle=False) as z:
        assert {"measure_0", "measure_1"} <= set(z.files)


def test_results_without_measures_load_as_before(tmp_path):
    cfg = TINY.replace(measures=(), record_activations=())
    assert cfg.key() == TrainConfig(seeds=(3, 1), epochs=12, n_log_points=5, estimators=(EstimatorSpec("ebab"),)).key()
    r = train(cfg, progress=False)
    assert r.measures == {}
    r.save(tmp_path / "plain")
    npz, sidecar = result_paths(tmp_path / "plain")
    assert "measures" not in json.loads(sidecar.read_text())["config"]
    with np.load(npz, allow_pickle=False) as z:
        assert not any(k.startswith("measure_") for k in z.files)
    back = load_run(tmp_path / "plain")
    assert back.measures == {} and back.measure_table().empty
    assert list(back.measure_table().columns) == ["activation", "l2", "seed", "epoch", "layer", "layer_name",
                                                  "measure", "value", "diverged"]


def test_a_diverged_network_gets_no_measures_and_the_others_are_unaffected():
    from ibtools.engine import Recorder
    from ibtools.trainer import EnsembleTrainer

    cfg = TINY.replace(seeds=(3, 1, 4), record_activations=())
    trainer = EnsembleTrainer(cfg)
    rec = Recorder(cfg, trainer)
    rec.record(0)
    with torch.no_grad():
        trainer.model.weights[1][1].fill_(float("inf"))  # network 1 blows up
    rec.record(2)  # no training in between: the other networks are as they were at epoch 0
    assert list(rec.diverged) == [-1, 2, -1]
    for name, v in rec.measures.items():
        assert np.isfinite(v[0]).all() and np.isnan(v[1][:, 1]).all()
        assert np.array_equal(v[1][:, [0, 2]], v[0][:, [0, 2]])  # one network's blow-up moves no other


def test_stored_results_load_with_their_keys_and_no_measures():
    from pathlib import Path

    stored = sorted((Path(__file__).resolve().parents[1] / "results" / "paper").glob("*.json"))
    if not stored:
        pytest.skip("no stored results in this checkout")
    r = load_run(stored[0])  # its sidecar's key is checked against the config's key on load
    assert r.config.measures == () and r.measures == {} and r.measure_table().empty


def test_a_measure_array_of_the_wrong_shape_is_refused(tiny_run, tmp_path):
    import hashlib
    import io

    from ibtools.results import CorruptResultError

    tiny_run.save(tmp_path / "run")
    npz, sidecar = result_paths(tmp_path / "run")
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["measure_1"] = arrays["measure_1"][:, :3]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    npz.write_bytes(buffer.getvalue())
    meta = json.loads(sidecar.read_text())
    meta["npz_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()  # a consistent checksum
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CorruptResultError, match="measure_1"):
        load_run(tmp_path / "run")


class Stop(KeyboardInterrupt):
    pass


def test_resume_from_a_checkpoint_keeps_the_measures(tiny_run, tmp_path):
    ckpt = tmp_path / "run.ckpt"

    def interrupt(epoch):
        if epoch == 7:
            raise Stop

    with pytest.raises(Stop):
        train(TINY, checkpoint=ckpt, on_epoch=interrupt, progress=False)
    assert ckpt.exists()
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checkpoint must be accepted, not ignored with a warning
        resumed = train(TINY, checkpoint=ckpt, on_epoch=seen.append, progress=False)
    assert seen[0] == 8
    for name in TINY.measures:
        assert np.array_equal(resumed.measures[name], tiny_run.measures[name], equal_nan=True)
    assert np.array_equal(resumed.mi["ebab"], tiny_run.mi["ebab"], equal_nan=True)


# -- tracking: rank correlations with known answers -----------------------------------------------


def synthetic_tables(sign: float = 1.0, n_nets: int = 10):
    """I(X;T) curves that rise to 5 bits and fall by 0.3 * (seed + 1) bits; a measure that is
    exp(sign * I(X;T)) at every epoch (so it falls with I(X;T) when sign > 0)."""
    epochs = np.arange(100)
    rise = np.minimum(epochs / 20, 1.0)
    planes, measures = [], []
    for seed in range(n_nets):
        drop = 0.3 * (seed + 1) * np.clip((epochs - 30) / 60, 0, 1)
        xt = 5 * rise - drop
        for layer in (1, 2):
            base = dict(activation="tanh", l2=0.0, seed=seed, epoch=epochs, layer=layer, diverged=False)
            planes.append(pd.DataFrame(base | dict(estimator="ebab", i_xt=xt * layer, i_ty=rise)))
            measures.append(pd.DataFrame(base | dict(measure="spread", value=np.exp(sign * xt * layer))))
    return pd.concat(planes, ignore_index=True), pd.concat(measures, ignore_index=True)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rank_correlations_on_known_curves(sign):
    table, measures = synthetic_tables(sign)
    per_net = T.curve_correlations(table, measures)
    assert len(per_net) == 20 and (per_net["n"] == 100).all()
    assert np.allclose(per_net["rho"], sign)
    out = T.compression_vs_geometry(table, measures, rng=np.random.default_rng(0), n_boot=300)
    assert out["layer"].tolist() == [1, 2] and (out["n"] == 10).all() and (out["n_undefined"] == 0).all()
    # change of log10(measure) = sign * log10(e) * compression: ranks agree exactly
    assert np.allclose(out["rho"], sign) and np.allclose(out["rho_low"], sign) and np.allclose(out["rho_high"], sign)
    ch = T.measure_changes(table, measures, "ebab")
    assert np.allclose(ch["change"], sign * np.log10(np.e) * ch["compression"], atol=1e-9)
    summary = T.summarize_curve_correlations(per_net, rng=np.random.default_rng(1), n_boot=200)
    assert np.allclose(summary["mean_rho"], sign) and (summary["n"] == 10).all()


def test_rank_correlations_are_reproducible_and_intervals_cover_the_estimate():
    table, measures = synthetic_tables()
    rng = np.random.default_rng(5)
    noise = rng.normal(scale=0.5, size=len(measures))
    measures = measures.assign(value=measures["value"] * np.exp(noise))
    a = T.compression_vs_geometry(table, measures, rng=np.random.default_rng(3), n_boot=400)
    b = T.compression_vs_geometry(table, measures, rng=np.random.default_rng(3), n_boot=400)
    pd.testing.assert_frame_equal(a, b)
    assert ((a["rho_low"] <= a["rho"]) & (a["rho"] <= a["rho_high"])).all()
    assert (a["rho"] < 1).all()  # the noise breaks the perfect ordering


def test_undefined_changes_are_counted_not_averaged():
    table, measures = synthetic_tables()
    # one network's measure is infinite at one epoch (e.g. coinciding class means)
    hit = (measures.seed == 4) & (measures.layer == 1) & (measures.epoch == 50)
    measures.loc[hit, "value"] = np.inf
    out = T.compression_vs_geometry(table, measures, rng=np.random.default_rng(0), n_boot=100)
    layer1 = out[out.layer == 1].iloc[0]
    assert layer1["n"] == 9 and layer1["n_undefined"] == 1 and layer1["rho"] == pytest.approx(1.0)


def test_tracking_bad_arguments():
    table, measures = synthetic_tables()
    with pytest.raises(ValueError, match="unknown compression score 'peak'"):
        T.measure_changes(table, measures, "ebab", score="peak")
    with pytest.raises(ValueError, match="no rows for measure 'nc1'"):
        T.compression_vs_geometry(table, measures, names="nc1")
    with pytest.raises(ValueError, match="unknown geometric measure"):
        T.curve_correlations(table, measures, names="clusters")
    with pytest.raises(ValueError, match="no rows for estimator 'kde'"):
        T.curve_correlations(table, measures, estimators="kde")
    with pytest.raises(ValueError, match="by must name"):
        T.compression_vs_geometry(table, measures, by=("seed",))


def test_tracking_on_a_recorded_run(tiny_run):
    table, measures = tiny_run.table(), tiny_run.measure_table()
    per_net = T.curve_correlations(table, measures)
    assert len(per_net) == 2 * 6 * 2 and (per_net["n"] == 4).all()
    out = T.compression_vs_geometry(table, measures, rng=np.random.default_rng(0), n_boot=50)
    assert len(out) == 2 * 6 and (out["n"] + out["n_undefined"] <= 2).all()
