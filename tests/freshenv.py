"""Fresh virtual environments for the packaging and Colab tests (a helper module, not a test).

A fresh environment must not download torch (gigabytes with CUDA) on every test run, yet it must
not see the book's own tools either (jupyter-book, papermill, IPython...), or a module that
imports one of them by mistake would pass. So :func:`fresh_venv` creates a new venv whose
``.pth`` file points at a folder of links to *only* the distributions that a given list of
requirements needs (their closure, taken from the environment running the tests), the way a
Colab machine has its own numpy and torch preinstalled. ``pip install`` in that venv then finds
those requirements satisfied and installs nothing else; the package under test itself is
installed for real (a regular, not editable, install).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def source_files(root: Path = ROOT) -> list[str]:
    """Paths (relative, POSIX) of the repository's files as a clone would have them: tracked and
    untracked-but-not-ignored files (so a new module counts before it is committed). Falls back
    to every file outside hidden folders, caches and build outputs when git is unavailable."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True, timeout=60).stdout.decode()
        files = [f for f in out.split("\0") if f]
        return sorted(f for f in files if (root / f).is_file())  # deleted but still tracked: skip
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "__pycache__", "_build", ".pytest_cache", "build", "dist"}
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.is_file() and not skip & set(p.relative_to(root).parts) and p.suffix != ".pyc")


def package_files(root: Path = ROOT) -> set[str]:
    """Every file of the ``ibtools`` package in the source tree (modules and data files)."""
    return {f for f in source_files(root) if f.startswith("ibtools/")}


def requirement_closure(requirements) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``requirements`` (strings) need, transitively, in the
    environment running this code; extras are not followed. Raises if one is missing or its
    installed version does not satisfy the requirement."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        dist = metadata.distribution(req.name)
        if not req.specifier.contains(dist.version, prereleases=True):
            raise RuntimeError(f"installed {req.name} {dist.version} does not satisfy {req}")
        found[name] = dist
        todo += [Requirement(r) for r in dist.requires or []]
    return found


def _top_level(dist: metadata.Distribution) -> set[str]:
    tops = {Path(str(f)).parts[0] for f in dist.files or []}
    tops = {t for t in tops if t not in ("..", "__pycache__")}
    if not tops:
        raise RuntimeError(f"cannot tell which files belong to {dist.metadata['Name']}")
    return tops


def link_distributions(requirements, target: Path) -> list[str]:
    """Fill ``target`` with links to the files of :func:`requirement_closure` (import packages
    and their ``.dist-info``); returns the distribution names."""
    target.mkdir(parents=True, exist_ok=True)
    dists = requirement_closure(requirements)
    for dist in dists.values():
        site = Path(dist.locate_file("")).resolve()
        for top in _top_level(dist):
            src, dst = site / top, target / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src, target_is_directory=src.is_dir())
    return sorted(dists)


def clean_env(**extra) -> dict:
    """The environment for commands run in a fresh venv: no PYTHONPATH (it would import the
    source tree instead of the installed package), no pip settings of this machine (no index,
    no find-links, no constraints) unless given, one thread."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "CONDA", "IBTOOLS_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1",
               IBTOOLS_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.update(extra)
    return env


def fresh_venv(path: Path, requirements) -> tuple[Path, Path]:
    """Create a venv at ``path`` that sees the installed distributions needed by
    ``requirements`` (and nothing else of this environment). Returns ``(python, site_packages)``.
    The venv gets no pip or setuptools of its own (list ``pip`` in ``requirements`` to use this
    environment's)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)],
                   check=True, capture_output=True, timeout=300)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True, env=clean_env()).stdout.strip())
    link_distributions(requirements, path / "preinstalled")
    (site / "_preinstalled.pth").write_text(str(path / "preinstalled") + "\n")
    return python, site

