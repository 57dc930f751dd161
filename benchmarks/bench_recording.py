"""A recorded epoch, previous code against current, side by side in one process.

A recorded epoch (``Recorder.record``) evaluates every network on all 4096 inputs, computes the
losses, accuracies and layer maxima, and runs the estimators on every layer. Here: 50 networks
(tanh and ReLU, trained 30 epochs), EBAB on all six layers, **process CPU time**, one thread,
median of interleaved repeats. "previous" is the record body before the recording speed-ups,
with the frozen estimators of ``benchmarks/legacy_estimators`` and torch's ``aminmax`` for the
layer maxima; every repeat checks that both give the same bits (``np.array_equal``).

Also: where the current record's time goes (evaluation forward pass, transposed copy and softmax,
loss/accuracy bookkeeping, layer maxima, EBAB per layer), and adaptive KDE per layer-network,
previous against current (same process, same layers).

    python benchmarks/bench_recording.py [--repeats 7] [--networks 50] [--akde-layers 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

import legacy_estimators as legacy  # noqa: E402
from common import save  # noqa: E402

from ibtools import estimators as E  # noqa: E402
from ibtools.config import EstimatorSpec, TrainConfig  # noqa: E402
from ibtools.engine import Recorder, _abs_max  # noqa: E402
from ibtools.trainer import EnsembleTrainer  # noqa: E402


def _old_abs_max(a):
    low, high = torch.aminmax(a.reshape(a.shape[0], -1), dim=1)
    return torch.maximum(high, low.neg_())


class PreviousRecorder(Recorder):
    """``Recorder.record`` as it was before the recording speed-ups (EBAB only)."""

    @torch.no_grad()
    def record(self, epoch: int) -> None:
        i = self.index[epoch]
        tr = self.trainer
        acts, logits = tr.evaluate(reuse_buffers=True)
        y = tr.y_all
        ce = F.cross_entropy(logits.transpose(1, 2), y.expand(tr.S, -1), reduction="none")
        correct = (logits.argmax(dim=2) == y).to(torch.float32)
        for name, values, idx in (("train_loss", ce, self._train_idx), ("test_loss", ce, self._test_idx),
                                  ("train_acc", correct, self._train_idx), ("test_acc", correct, self._test_idx)):
            self.history[name][i] = values[:, idx].mean(1).cpu().numpy()
        peaks_t = torch.stack([_old_abs_max(a) for a in acts])
        finite = (torch.isfinite(peaks_t).all(0) & torch.isfinite(ce).all(1)).cpu().numpy()
        newly = (~finite) & (self.diverged < 0)
        self.diverged[newly] = epoch
        ok = np.flatnonzero(finite & (self.diverged < 0))
        peaks = peaks_t.cpu().numpy()
        self.layer_max[i] = peaks
        if ok.size:
            self.network_max[ok] = np.maximum(self.network_max[ok], peaks[:, ok].max(0))
        assert ok.size == tr.S
        for spec in self.config.estimators:
            for layer, a in enumerate(acts):
                result = legacy.ebab(a, y, **spec.kwargs)
                self.mi[spec.label][i, layer, :, 0] = result[0]
                self.mi[spec.label][i, layer, :, 1] = result[1]
        self.recorded.add(epoch)


def _cpu(fn):
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def recording(activation: str, networks: int, repeats: int) -> dict:
    config = TrainConfig(activation=activation, seeds=tuple(range(networks)), estimators=(EstimatorSpec("ebab"),),
                         record_activations=())
    trainer = EnsembleTrainer(config)
    for _ in range(30):
        trainer.train_epoch()
    new, old = Recorder(config, trainer), PreviousRecorder(config, trainer)
    epoch = int(new.epochs[0])

    def run(rec):
        rec.recorded.clear()
        return _cpu(lambda: rec.record(epoch))

    run(new), run(old)  # warm-up (numba compiles or loads its cache)
    times = {"previous": [], "current": []}
    for _ in range(repeats):
        times["previous"].append(run(old))
        times["current"].append(run(new))
        i = new.index[epoch]
        assert np.array_equal(new.mi["ebab"][i], old.mi["ebab"][i]) and np.array_equal(new.layer_max[i], old.layer_max[i])
        assert all(np.array_equal(new.history[k][i], old.history[k][i]) for k in new.history)
    ms = {k: 1e3 * float(np.median(v)) / networks for k, v in times.items()}

    # where the current record's time goes (CPU ms per network, medians)
    y = trainer.y_all
    acts, logits = trainer.evaluate(reuse_buffers=True)
    parts = {
        "forward pass (all 4096 inputs)": lambda: trainer._forward_all(),
        "evaluate (forward + transposed copy + softmax)": lambda: trainer.evaluate(reuse_buffers=True),
        "losses and accuracies": lambda: (F.cross_entropy(logits.transpose(1, 2), y.expand(trainer.S, -1), reduction="none"),
                                          (logits.argmax(dim=2) == y).to(torch.float32)),
        "layer maxima (current)": lambda: [_abs_max(a) for a in acts],
        "layer maxima (previous: torch.aminmax)": lambda: [_old_abs_max(a) for a in acts],
    }
    for layer, a in enumerate(acts):
        parts[f"EBAB layer {layer + 1} ({a.shape[2]} units)"] = lambda a=a: E.ebab(a, y)
        parts[f"EBAB layer {layer + 1}, previous"] = lambda a=a: legacy.ebab(a, y)
    breakdown = {}
    for name, fn in parts.items():
        fn()
        breakdown[name] = 1e3 * float(np.median([_cpu(fn) for _ in range(repeats)])) / networks
    return {"ms_per_network": ms, "speedup": ms["previous"] / ms["current"], "identical": True, "breakdown_ms_per_network": breakdown}


def akde(activation: str, layers: int, repeats: int) -> dict:
    """aKDE (default alpha, upper bound) on one network's layers, previous vs current, CPU ms."""
    config = TrainConfig(activation=activation, seeds=(0,), record_activations=())
    trainer = EnsembleTrainer(config)
    for _ in range(100):
        trainer.train_epoch()
    acts, _ = trainer.evaluate()
    y = trainer.y_all
    out = {}
    for layer, a in enumerate(acts[:layers]):
        a = a[0]
        E.akde(a, y), legacy.akde(a, y)
        old = [_cpu(lambda: legacy.akde(a, y)) for _ in range(repeats)]
        new = [_cpu(lambda: E.akde(a, y)) for _ in range(repeats)]
        diff = float(np.abs(np.subtract(E.akde(a, y), legacy.akde(a, y))).max())
        out[f"layer {layer + 1}"] = {"previous_ms": 1e3 * float(np.median(old)), "current_ms": 1e3 * float(np.median(new)),
                                     "max_abs_difference_bits": diff}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--akde-layers", type=int, default=6)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = {"load_before": os.getloadavg()[0], "threads": 1}
    for activation in ("tanh", "relu"):
        r = recording(activation, args.networks, args.repeats)
        record[f"recording {activation}"] = r
        print(f"{activation}: recorded epoch, EBAB on all layers, {args.networks} networks: previous "
              f"{r['ms_per_network']['previous']:.2f} ms, current {r['ms_per_network']['current']:.2f} ms CPU per network "
              f"({r['speedup']:.2f}x), bits identical", flush=True)
        for name, v in r["breakdown_ms_per_network"].items():
            print(f"    {name:48s} {v:6.3f} ms per network")
    if args.akde_layers:
        for activation in ("tanh", "relu"):
            r = akde(activation, args.akde_layers, max(1, args.repeats // 2))
            record[f"akde {activation}"] = r
            for name, v in r.items():
                print(f"aKDE {activation} {name}: previous {v['previous_ms']:.1f} ms, current {v['current_ms']:.1f} ms, "
                      f"max |diff| {v['max_abs_difference_bits']:.1e} bits", flush=True)
    record["load_after"] = os.getloadavg()[0]
    print(f"load average {record['load_before']:.1f} before, {record['load_after']:.1f} after")
    print("written", save("recording", record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
