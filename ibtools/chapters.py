"""Helpers for the book's chapters: one setup call, and parameter errors shown as one clear line.

A chapter re-run with papermill and a bad parameter (an unknown activation, negative epochs, an
unknown estimator) should stop in its first cells with a message that says what is wrong and
what is allowed, not with a traceback from deep inside the package.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["ParameterError", "setup", "checking_parameters", "positive_int", "positive_number", "as_list", "provenance_markdown",
           "provenance_footer", "PAPER_URL", "chapter_title"]


class ParameterError(ValueError):
    """A chapter parameter is invalid; the message says which and what is allowed."""


def _short_handler(shell, etype, value, tb, tb_offset=None):
    # an error output with one line instead of a traceback (nbclient/papermill still stop)
    shell._showtraceback(etype, value, [f"\033[0;31m{etype.__name__}\033[0m: {value}"])


def setup(threads: int | None = None):
    """Apply the book's figure style, show :class:`ParameterError` as one line in notebooks,
    and set torch's CPU threads. Returns nothing; call it once in a chapter's setup cell."""
    from .engine import set_threads
    from .plotting import use_style

    use_style()
    set_threads(threads)
    try:
        shell = get_ipython()  # noqa: F821 - defined inside IPython only
    except NameError:
        return
    shell.set_custom_exc((ParameterError,), _short_handler)


@contextlib.contextmanager
def checking_parameters():
    """Turn any ``ValueError`` raised while building a chapter's configuration from its
    parameters into a :class:`ParameterError` with the same message."""
    try:
        yield
    except ParameterError:
        raise
    except ValueError as exc:
        raise ParameterError(f"bad chapter parameter: {exc}") from None


def positive_int(value, name: str) -> int:
    """Check a count-like chapter parameter."""
    from .validation import check_int

    return check_int(value, f"bad chapter parameter: {name}", 1, error=ParameterError)


def positive_number(value, name: str) -> float:
    """Check a positive, finite real chapter parameter (a constant such as the adaptive-KDE
    ``ALPHA``); booleans, strings, NaN, infinities, zero and negatives are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"bad chapter parameter: {name} must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(f"bad chapter parameter: {name} must be a positive, finite number, got {value!r}")
    return float(value)


def as_list(value, name: str, cast=str) -> list:
    """A list parameter given as a list, or as a comma-separated string (what ``papermill -p``
    passes): ``"tanh,relu"`` -> ``["tanh", "relu"]``. Each item goes through ``cast``."""
    if isinstance(value, str):
        items = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        items = [v.strip("'\"") for v in items]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ParameterError(f"bad chapter parameter: {name} must be a list or a comma-separated string, got {value!r}")
    if not items:
        raise ParameterError(f"bad chapter parameter: {name} must not be empty")
    try:
        return [cast(v) for v in items]
    except (TypeError, ValueError):
        raise ParameterError(f"bad chapter parameter: {name} holds {value!r}, which are not all {cast.__name__}") from None


# --- chapter titles ---------------------------------------------------------------------------------


def chapter_title(name: str, book_dir=None) -> str:
    """The title of the book's chapter ``name`` (``"05_activations"``): the first ``# `` heading of
    ``<name>.ipynb``, for links that a reader can read (a table's "see *Activation functions*"
    instead of a file name).

    The notebook is looked up in ``book_dir``, else in the working directory (the book's folder when
    a chapter runs), its ``ib-book/book`` (the clone of the Colab setup cell) and the ``book``
    folder next to the package. Raises ValueError if no such chapter, or no heading, is found.
    """
    import json
    from pathlib import Path

    stem = Path(str(name)).name.removesuffix(".ipynb")
    places = [Path(book_dir)] if book_dir is not None else [
        Path.cwd(), Path.cwd() / "ib-book" / "book", Path(__file__).resolve().parent.parent / "book"]
    for place in places:
        path = place / f"{stem}.ipynb"
        if path.is_file():
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
                if cell["cell_type"] == "markdown":
                    for line in "".join(cell["source"]).splitlines():
                        if line.startswith("# "):
                            return line[2:].strip()
            raise ValueError(f"chapter {path} has no title (a '# ' heading in a Markdown cell)")
    raise ValueError(f"no chapter {stem}.ipynb in {', '.join(str(p) for p in places)}")


# --- provenance footer -----------------------------------------------------------------------------

#: The paper this book reproduces (OpenReview page of the ICLR 2019 version).
PAPER_URL = "https://openreview.net/forum?id=SkeZisA5t7"
_FOOTER_PACKAGES = ("ibtools", "torch", "numpy", "scipy", "pandas", "matplotlib")


def _package_version(name: str) -> str:
    if name == "ibtools":
        from . import __version__ as version  # the package's own version, also for an uninstalled checkout

        return str(version)
    try:
        import importlib.metadata

        return importlib.metadata.version(name)
    except Exception:  # not installed, or metadata missing
        module = __import__("sys").modules.get(name)
        return str(getattr(module, "__version__", "not installed"))


def _shown_path(path) -> str:
    """A path as a reader can use it: relative to the repository, never the build machine's."""
    from pathlib import Path

    path = Path(path).resolve()
    root = Path(__file__).resolve().parent.parent
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return f"…/{path.name}" if path.name else str(path)


def _runs_of(results) -> list:
    runs = []
    for item in results if isinstance(results, (list, tuple)) else [results]:
        if item is None:
            continue
        if hasattr(item, "runs"):
            runs.extend(item.runs)
        elif isinstance(item, dict):
            runs.extend(item.values())
        else:
            runs.append(item)
    return runs


def provenance_markdown(results=None, results_dir=None, *, computed_here: str | None = None) -> str:
    """The text of a chapter's provenance footer (MyST Markdown): the paper it reproduces, the
    package versions and git commit of the process that built the page, and where the chapter's
    results came from.

    Parameters
    ----------
    results : RunResult, SweepResult, list or dict of them, optional
        The results the chapter shows; their recorded provenance (commit, versions, date,
        machine) is summarized.
    results_dir : path, optional
        Where stored results were looked up (shown relative to the repository).
    computed_here : str, optional
        What the chapter computed while it ran (e.g. ``"5 networks trained for 1500 epochs"``).
    """
    from .results import _git_commit

    versions = ", ".join(f"{name} {_package_version(name)}" for name in _FOOTER_PACKAGES)
    commit = _git_commit() or "unknown (not a git checkout)"
    lines = [
        f"**Provenance.** This page reproduces [Chelombiev, Houghton & O'Donnell (2019)]({PAPER_URL}). "
        f"It was executed with {versions}, Python {__import__('platform').python_version()}, "
        f"at commit `{commit[:12] + commit[40:] if len(commit) >= 40 else commit}`."
    ]
    runs = _runs_of(results)
    if runs:
        metas = [getattr(r, "meta", {}) or {} for r in runs]
        commits = sorted({str(m.get("git_commit"))[:12] + ("-dirty" if str(m.get("git_commit", "")).endswith("-dirty") else "")
                          for m in metas if m.get("git_commit")})
        created = sorted(str(m["created"])[:10] for m in metas if m.get("created"))
        machines = sorted({str(m["machine"]) for m in metas if m.get("machine")})
        wall = sum(float(m.get("wall_time_s") or 0) for m in metas)
        where = f" from `{_shown_path(results_dir)}`" if results_dir is not None else ""
        text = f"Its results: {len(runs)} stored or computed run{'s' if len(runs) != 1 else ''}{where}"
        if commits:
            text += f", made at commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}"
        if created:
            text += f" on {created[0]}" + (f" to {created[-1]}" if created[-1] != created[0] else "")
        if machines:
            text += f" ({'; '.join(machines)})"
        if wall:
            text += f", {wall / 3600:.1f} CPU-hours of training in all" if wall >= 360 else f", {wall:.0f} s of training"
        lines.append(text + ".")
    elif results_dir is not None:
        lines.append(f"Its stored results are looked up in `{_shown_path(results_dir)}`.")
    if computed_here:
        lines.append(f"Computed while the page was built: {computed_here}.")
    return " ".join(lines)


def provenance_footer(results=None, results_dir=None, *, computed_here: str | None = None):
    """Show :func:`provenance_markdown` as the last output of a chapter (an IPython
    ``Markdown`` object, which the book renders with its links)."""
    from IPython.display import Markdown

    # (no "---" rule: a transition inside a cell output is invalid in docutils)
    return Markdown(provenance_markdown(results, results_dir, computed_here=computed_here))
