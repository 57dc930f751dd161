"""Command line: ``python -m ibtools run ...`` (one configuration) and ``python -m ibtools sweep ...``
(a grid of activations x L2 strengths x seeds), without a notebook."""

# How it is built (a comment, so that ``--help``, which prints the docstring, stays short): each
# subcommand is one function ``_cmd_<name>(args) -> int`` that its subparser names with
# ``set_defaults(func=...)`` in build_parser; main() parses, sets the torch threads, calls it and
# turns the errors a user can fix into one line and an exit code. A new subcommand is a subparser
# plus its _cmd_ function.

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__

EPILOG = """examples:
  python -m ibtools run --activation tanh --epochs 2000 --seeds 0-9 --out results/tanh
  python -m ibtools run --estimators ebab "akde:alpha=0.01,n_points=40" --out results/relu
  python -m ibtools sweep --activations tanh relu elu --l2 0 0.015 --seeds 0-49 --cache results/sweep
  python -m ibtools sweep --task mnist1d --hidden 100 50 20 10 --activations tanh relu --seeds 0-9 --cache results/mnist1d
"""


#: Most networks one command trains (and the timing probe builds): 200 units of the study's 50.
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-49"``, ``"0,3,7"`` or ``"0-4,10"`` -> seeds (at most :data:`MAX_SEEDS` of them)."""
    seeds: list[int] = []
    too_many = f"--seeds {text} asks for more than {MAX_SEEDS} networks; split the work into several commands"
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                if len(seeds) + hi - lo + 1 > MAX_SEEDS:  # checked before the range is built
                    raise argparse.ArgumentTypeError(too_many)
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like 0-49 or 0,3,7 (non-negative integers), got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {text!r}")
    if len(seeds) > MAX_SEEDS:
        raise argparse.ArgumentTypeError(too_many)
    return tuple(seeds)


def number(option: str, minimum: float, kind=int):
    """The one validator of numeric options: an argparse ``type`` accepting ``kind`` values
    ``>= minimum``, whose error names the option, e.g. ``--threads must be an integer >= 1, got '-3'``.
    Integers go through :func:`ibtools.validation.parse_int` (the package's one integer check);
    a bad value is an ``argparse.ArgumentTypeError``, so argparse prints a one-line usage error."""
    if kind is int:
        from .validation import parse_int

        def parse_integer(text: str) -> int:
            return parse_int(text, option, minimum, error=argparse.ArgumentTypeError)

        return parse_integer

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or abs(value) == float("inf") or value < minimum:
            raise argparse.ArgumentTypeError(f"{option} must be a finite number >= {minimum:g}, got {text!r}")
        return value

    return parse


def _estimator(text: str):
    from .config import EstimatorSpec

    if text == "study":  # the study's main estimators (ibtools.settings), so that chapters find the results
        from .study import study_estimators

        return study_estimators(sensitivity=False)
    try:
        return EstimatorSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _task(text: str) -> str:
    from .tasks import canonical_task

    try:
        return canonical_task(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_config_options(p: argparse.ArgumentParser, sweep: bool) -> None:
    from .config import TrainConfig
    from .study import study_estimators
    from .tasks import task_names

    d = TrainConfig()
    study_labels = " and ".join(spec.label for spec in study_estimators(sensitivity=False))
    g = p.add_argument_group("network and training (defaults: the paper's code)")
    g.add_argument("--task", type=_task, default=d.task, metavar="TASK",
                   help=f"data set: one of {', '.join(task_names())}; options as name:key=value, e.g. "
                        f"mnist1d:num_samples=10000 (default: {d.task}, the paper's 12-bit task); the input and "
                        "output widths follow from it")
    g.add_argument("--hidden", type=number("every --hidden width", 1), nargs="+", default=list(d.hidden), metavar="W", help="hidden widths (default: 10 7 5 4 3)")
    if not sweep:
        g.add_argument("--activation", default=d.activation, help=f"hidden activation (default: {d.activation})")
        g.add_argument("--l2", type=float, default=d.l2, help="L2 strength on hidden weights (default: 0)")
    g.add_argument("--init", default=d.init, help=f"weight initialization (default: {d.init})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr})")
    g.add_argument("--batch-size", type=number("--batch-size", 1), default=d.batch_size, help=f"minibatch size (default: {d.batch_size})")
    g.add_argument("--epochs", type=number("--epochs", 1), default=d.epochs, help=f"training epochs (default: {d.epochs})")
    g.add_argument("--split", default=d.split, help="unshuffled (paper's code) or stratified (default: unshuffled)")
    g.add_argument("--train-fraction", type=float, default=d.train_fraction, help="share of patterns for training (default: 0.8)")
    g.add_argument("--split-seed", type=number("--split-seed", 0), default=d.split_seed, help="seed of the stratified split (default: 0)")
    g.add_argument("--shuffle-batches", action="store_true", help="reshuffle minibatches every epoch (paper's code: fixed order)")
    g.add_argument("--ensemble-invariant", action="store_true",
                   help="arithmetic under which a network's numbers do not depend on which networks share its "
                        "ensemble (TrainConfig.ensemble_invariant; the stored study was computed without it)")
    g.add_argument("--quantize-bits", type=number("--quantize-bits", 1), default=None, metavar="B",
                   help="quantize hidden activity to 2**B levels, 1-16, for exact MI by counting (default: none)")
    g.add_argument("--noise-std", type=number("--noise-std", 0, float), default=d.noise_std, metavar="SIGMA",
                   help="Gaussian noise std added to every hidden unit; a mixture estimator needs the same "
                        "noise_std (default: 0 = none)")
    g.add_argument("--seeds", type=parse_seeds, default=d.seeds, help="network seeds, e.g. 0-49 or 0,3,7 (default: 0)")
    r = p.add_argument_group("recording")
    r.add_argument("--estimators", type=_estimator, nargs="+", default=list(d.estimators), metavar="SPEC",
                   help='estimators as name[:key=value,...], e.g. ebab "akde:alpha=0.01,n_points=40"; '
                        f'"study" = the book study\'s {study_labels} (ibtools.settings), as chapters expect them '
                        f'(default: {" ".join(spec.label for spec in d.estimators)})')
    r.add_argument("--n-log-points", type=number("--n-log-points", 1), default=d.n_log_points, help="points of the log-spaced schedule (default: 400 -> 274 epochs of 8000)")
    r.add_argument("--measures", nargs="+", default=[], metavar="NAME",
                   help="geometric measures recorded at every scheduled epoch, e.g. within_between nc1 (default: none)")
    r.add_argument("--record-activations", type=number("every --record-activations epoch", 0), nargs="*", default=[], metavar="EPOCH", help="epochs at which to keep raw activity")
    x = p.add_argument_group("execution")
    x.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train (default: cpu)")
    x.add_argument("--backend", default="torch", choices=["torch", "fused"], help="training engine: torch (reference, default) or fused (numba kernel, CPU)")
    x.add_argument("--threads", type=number("--threads", 1), default=None, help="torch CPU threads (default: 1, or IBTOOLS_THREADS)")
    x.add_argument("--checkpoint-every", type=number("--checkpoint-every", 0, float), default=120.0, help="seconds between checkpoints (default: 120)")
    x.add_argument("--no-progress", action="store_true", help="no progress bar")
    x.add_argument("--no-estimate", action="store_true", help="skip the short timing probe before starting")
    x.add_argument("--dry-run", action="store_true", help="print the work and the time estimate, then stop")


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to an option's help only where the help does not already say it, and
    not for on/off flags or options without a default (a required ``--cache``); a list default is
    shown as the values one would type (``relu``, not ``['relu']``)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.nargs == 0 or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action.default, (list, tuple)):
            shown = " ".join(str(v) for v in action.default) or "none"
            return f"{text} (default: {shown.replace('%', '%%')})"
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ibtools", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ibtools {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{run,sweep,paper}")
    run = sub.add_parser("run", help="train one configuration (one network per seed) and save its results",
                         formatter_class=_DefaultsFormatter)
    _add_config_options(run, sweep=False)
    run.add_argument("--out", required=True, type=Path, help="output path; writes OUT.npz and OUT.json")
    run.set_defaults(func=_cmd_run)
    sw = sub.add_parser("sweep", help="train a grid of activations x L2 strengths x seeds, cached unit by unit",
                        formatter_class=_DefaultsFormatter)
    _add_config_options(sw, sweep=True)
    sw.add_argument("--activations", nargs="+", default=["relu"], help="activations to sweep")
    sw.add_argument("--l2", type=float, nargs="+", default=[0.0], help="L2 strengths to sweep")
    sw.add_argument("--seeds-per-unit", type=number("--seeds-per-unit", 1), default=50, help="networks trained together per unit")
    sw.add_argument("--cache", required=True, type=Path, help="directory of finished units (resumable)")
    dist = sw.add_mutually_exclusive_group()
    dist.add_argument("--workers", type=number("--workers", 1), default=None, help="run units on a local Dask cluster of N worker processes")
    dist.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://10.0.0.1:8786")
    sw.add_argument("--connect-timeout", type=number("--connect-timeout", 0.1, float), default=10.0,
                    help="seconds to wait for --scheduler before giving up")
    sw.set_defaults(func=_cmd_sweep)
    paper = sub.add_parser("paper", help="run or resume the book's full-scale study (results/paper)",
                           formatter_class=_DefaultsFormatter)
    paper.add_argument("--parts", nargs="+", default=["single", "activations", "l2"],
                       choices=["single", "activations", "l2"], help="which parts of the study to run")
    paper.add_argument("--cache", type=Path, default=None, help="results directory (default: results/paper in the repository)")
    paper.add_argument("--threads", type=number("--threads", 1), default=None, help="torch CPU threads (default: 1, or IBTOOLS_THREADS)")
    paper.add_argument("--fused", action="store_true",
                       help="both compiled CPU paths: training with --backend fused and (adaptive) KDE with "
                            "engine=fused; several times faster, but numbers that agree with the stored study's to "
                            "float32 rounding, not bit for bit; needs a --cache of its own")
    paper.add_argument("--no-progress", action="store_true", help="no progress bar")
    pdist = paper.add_mutually_exclusive_group()
    pdist.add_argument("--workers", type=number("--workers", 1), default=None, help="run units on a local Dask cluster of N worker processes")
    pdist.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    paper.add_argument("--connect-timeout", type=number("--connect-timeout", 0.1, float), default=10.0,
                       help="seconds to wait for --scheduler before giving up")
    paper.set_defaults(func=_cmd_paper)
    return parser


def _executor(args):
    if getattr(args, "workers", None) is None and getattr(args, "scheduler", None) is None:
        return None
    from .distributed import DaskExecutor

    return DaskExecutor(n_workers=args.workers, address=args.scheduler, threads_per_worker=args.threads or 1,
                        connect_timeout=args.connect_timeout)


def _flatten(specs) -> tuple:
    out = []
    for s in specs:
        out.extend(s if isinstance(s, tuple) else (s,))
    return tuple(out)


def _config_from(args, **overrides):
    from .config import TrainConfig

    kwargs = dict(
        hidden=tuple(args.hidden), init=args.init, lr=args.lr, batch_size=args.batch_size,
        epochs=args.epochs, split=args.split, train_fraction=args.train_fraction, split_seed=args.split_seed,
        shuffle_batches=args.shuffle_batches, seeds=tuple(args.seeds), n_log_points=args.n_log_points,
        estimators=_flatten(args.estimators), record_activations=tuple(args.record_activations), device=args.device,
        ensemble_invariant=args.ensemble_invariant, task=args.task, backend=args.backend,
        quantize_bits=args.quantize_bits, noise_std=args.noise_std, measures=tuple(args.measures),
    )
    kwargs.update(overrides)
    return TrainConfig(**kwargs)


def _describe(configs, args, out=sys.stderr) -> None:
    from .training import probe_seconds
    from .sweep import _format_seconds, work_summary

    w = work_summary(configs)
    print(f"work: {w['units']} unit(s), {w['networks']} networks, {w['network_epochs']:,} network-epochs, "
          f"{w['estimator_evaluations']:,} estimator evaluations", file=out)
    if not args.no_estimate and configs:
        first = probe_seconds(configs[0])
        print(f"estimated time here: about {_format_seconds(first * len(configs))} "
              f"({_format_seconds(first)} per unit, from a short timing probe)", file=out)


def _cmd_paper(args) -> int:
    """``python -m ibtools paper``: run or resume the book's full-scale study."""
    from .results import check_writable_dir
    from .study import PAPER_RESULTS, run_paper_study

    if args.fused and args.cache is None:
        raise ValueError(f"--fused computes another set of numbers than the stored study's ({PAPER_RESULTS}): give it "
                         f"a --cache of its own, e.g. --cache _scratch_results/paper_fused")
    check_writable_dir(args.cache or PAPER_RESULTS, "--cache")
    executor = _executor(args)
    try:
        run_paper_study(args.cache or PAPER_RESULTS, parts=tuple(args.parts), executor=executor,
                        progress=not args.no_progress, compiled=args.fused)
    finally:
        if executor is not None:
            executor.close()
    print(f"study finished: results in {args.cache or PAPER_RESULTS}")
    return 0


def _cmd_run(args) -> int:
    """``python -m ibtools run``: train one configuration and save it as ``OUT.npz`` + ``OUT.json``."""
    config = _config_from(args, activation=args.activation, l2=args.l2)
    _describe([config], args)
    if args.dry_run:
        return 0
    from .results import check_writable_dir, result_paths
    from .training import train

    out = args.out
    npz_path, json_path = result_paths(out)
    for p in (npz_path, json_path):
        if p.is_dir():
            raise ValueError(f"--out {out}: {p} is a directory")
    check_writable_dir(npz_path.parent, "--out directory")
    result = train(config, checkpoint=npz_path.with_suffix(".ckpt"), checkpoint_every=args.checkpoint_every,
                   progress=not args.no_progress)
    sidecar = result.save(out)
    print(f"saved {npz_path} and {sidecar} ({result.meta['wall_time_s']:.1f} s)")
    if result.diverged_seeds():
        print(f"warning: diverged networks (seed: epoch): {result.diverged_seeds()}", file=sys.stderr)
    return 0


def _cmd_sweep(args) -> int:
    """``python -m ibtools sweep``: train a grid of activations x L2 strengths x seeds into a cache."""
    from .results import check_writable_dir
    from .sweep import SweepConfig, pending_units, run_sweep

    base = _config_from(args)
    sweep = SweepConfig(base=base, activations=tuple(args.activations), l2s=tuple(args.l2),
                        seeds=tuple(args.seeds), seeds_per_unit=args.seeds_per_unit)
    check_writable_dir(args.cache, "--cache")
    _describe(pending_units(sweep, args.cache), args)
    if args.dry_run:
        return 0
    executor = _executor(args)
    try:
        result = run_sweep(sweep, args.cache, progress=not args.no_progress,
                           checkpoint_every=args.checkpoint_every, executor=executor,
                           log=lambda msg: print(msg, file=sys.stderr))
    finally:
        if executor is not None:
            executor.close()
    print(f"sweep finished: {len(result.runs)} units in {args.cache}")
    if result.diverged():
        print(f"warning: diverged networks (activation, l2, seed): epoch: {result.diverged()}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    """The command line's entry point: parse ``argv`` (default ``sys.argv[1:]``), run the chosen
    subcommand's ``_cmd_*`` function (set on its subparser as ``func``) and return the exit code.

    Exit codes: 0 done (or ``--dry-run``); 2 no subcommand, a usage error or a bad value (one
    ``error:`` line on stderr); 1 an operating-system error (a full disk, an unreachable
    scheduler) or failed sweep units (the finished ones are stored); 130 interrupted (finished
    work is saved and the next run resumes from it). argparse itself exits (``SystemExit``) on
    ``--help``, ``--version`` and malformed options.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .engine import set_threads

    try:
        set_threads(args.threads)
        return args.func(args)
    except ValueError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a lost file system, an unreachable scheduler: one line, not a traceback
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        from .distributed import SweepFailed

        if not isinstance(exc, SweepFailed):
            raise
        print(f"{parser.prog} {args.command}: {exc}\nthe other units are stored; re-run to retry the failed ones",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished work is saved and the next run resumes from it", file=sys.stderr)
        return 130
