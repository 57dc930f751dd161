"""The package's version (the one place it is written) and the source commit it was installed from.

``pyproject.toml`` reads ``__version__`` from here (``[tool.setuptools.dynamic]``), so the wheel's
metadata, ``ibtools.__version__``, ``python -m ibtools --version`` and the result sidecars agree.
A release of the book is the git tag ``v`` + this version (``repository.branch`` in
``_config.yml``).
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

__version__ = "0.1.0"

DIST_NAME = "ibtools-infoplane"  # the distribution name; ``pip install ibtools`` is another project
PACKAGE_DIR = Path(__file__).resolve().parent


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _commit_of_checkout(root: Path) -> str | None:
    """HEAD of the git checkout whose top level is ``root`` (``-dirty`` if tracked files were
    changed), or None when ``root`` is not the top of a checkout. A package installed inside some
    other repository (e.g. a virtualenv in a user's project) must not report that project's
    commit, hence the top-level check."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != root.resolve():
        return None
    head = _git(root, "rev-parse", "HEAD")
    if not head:
        return None
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return head + ("-dirty" if dirty else "")


def source_commit() -> str | None:
    """The git commit of the ibtools source in use, or None when it cannot be known.

    In order: the checkout that this package lives in (source tree or editable install); for a
    regular install, the commit pip recorded (``pip install git+URL@TAG``) or the checkout pip
    installed from (``pip install ./clone``, as the chapters' Colab cells do), if it is still
    there.
    """
    commit = _commit_of_checkout(PACKAGE_DIR.parent)
    if commit:
        return commit
    try:
        direct = metadata.distribution(DIST_NAME).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not direct:
        return None
    try:
        info = json.loads(direct)
    except ValueError:
        return None
    if "vcs_info" in info:
        return info["vcs_info"].get("commit_id")
    url = urlparse(info.get("url", ""))
    if url.scheme == "file" and "dir_info" in info and not info["dir_info"].get("editable"):
        return _commit_of_checkout(Path(unquote(url.path)))
    return None
