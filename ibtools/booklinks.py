"""Keep the repository address and the book's release in one place (``_config.yml``,
``repository.url`` and ``repository.branch``) and everything that needs them in sync: the
Open-in-Colab badge and the Colab install cell of each chapter, and the Colab table of the README.

``repository.branch`` is the git ref that readers get: Jupyter Book's launch buttons and the
badges open the chapter at that ref, and the install cell clones that ref and installs ibtools
from it. For a published book it is the release tag (``v`` + ``ibtools.__version__``), so a
reader in Colab runs exactly the released chapter with exactly the released package.

    python -m ibtools.booklinks          # rewrite the chapters' badges and install cells
    python -m ibtools.booklinks --check  # exit 1 if any chapter disagrees with _config.yml
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"']+?/blob/[^/]+/book/([\w.-]+\.ipynb)")
PIP_GIT = re.compile(r"git\+https://github\.com/[^\s@\"'`]+@[\w.-]*[\w-]")  # README: pip install "git+URL@REF"
# The generated part of every chapter's setup cell: from its first comment line to the line that
# points the package at the stored results (older cells had the same first and last lines).
INSTALL_BLOCK = re.compile(r"^# Setup\. In Colab:.*?^    os\.environ\.setdefault\(\"IBTOOLS_RESULTS\".*?\n", re.M | re.S)
INSTALL_TEMPLATE = """\
# Setup. In Colab: clone the book's release (for ibtools and the stored results) and install
# ibtools from it next to Colab's own torch. Elsewhere this only imports.
# Generated from _config.yml by `python -m ibtools.booklinks`: change the address there.
import os
import subprocess
import sys

REPO_URL = "{url}"
RELEASE = "{ref}"  # the tag (or branch) of the book that this chapter belongs to
if "google.colab" in sys.modules:
    if not os.path.isdir("ib-book"):
        subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--depth", "1",
                        "--branch", RELEASE, REPO_URL, "ib-book"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "./ib-book"], check=True)
    os.environ.setdefault("IBTOOLS_RESULTS", os.path.abspath("ib-book/results/paper"))
"""


def repository(config_path: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """``(url, ref)`` from the ``repository:`` block of ``_config.yml`` (``url`` and ``branch``,
    which holds the release tag, or a branch while developing)."""
    text = config_path.read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n?)+)", text, re.M)
    if not block:
        raise ValueError(f"{config_path} has no repository: block")
    url = re.search(r"^\s+url:[ \t]*(.*?)(?:[ \t]+#.*)?[ \t]*$", block.group(1), re.M)
    branch = re.search(r"^\s+branch:[ \t]*(.*?)(?:[ \t]+#.*)?[ \t]*$", block.group(1), re.M)
    if not url:
        raise ValueError(f"{config_path}: repository.url is missing")
    address = url.group(1).strip("'\"").rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", address):
        raise ValueError(f"{config_path}: repository.url {address!r} is not a GitHub repository address "
                         "(https://github.com/OWNER/NAME), which Colab's badges need")
    ref = branch.group(1).strip("'\"") if branch else "main"
    if re.fullmatch(r"[0-9a-f]{7,40}", ref):
        raise ValueError(f"{config_path}: repository.branch is {ref!r}, which looks like a commit; the Colab install "
                         "cells clone it with `git clone --branch`, which takes a tag or a branch: tag the commit "
                         "(git tag v<version> <commit>) and give the tag")
    if not re.fullmatch(r"\w[\w.-]*", ref) or ".." in ref:  # no "/": the ref is one segment of the badge URLs
        raise ValueError(f"{config_path}: repository.branch {ref!r} is not a tag or branch name made of letters, "
                         "digits, '_', '-' and '.' (e.g. v1.0.0)")
    return address, ref


def install_block(url: str, ref: str) -> str:
    """The generated start of every chapter's setup cell: in Colab, clone ``ref`` of ``url`` and
    ``pip install`` it (a regular, not editable, install)."""
    return INSTALL_TEMPLATE.format(url=url, ref=ref)


def colab_url(url: str, branch: str, notebook: str) -> str:
    path = url.split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/book/{notebook}"


def _rewrite(text: str, url: str, branch: str, code: bool) -> str:
    text = BADGE.sub(lambda m: colab_url(url, branch, m.group(1)), text)
    text = PIP_GIT.sub(lambda m: f"git+{url}@{branch}", text)
    if code:
        text = INSTALL_BLOCK.sub(lambda m: install_block(url, branch), text, count=1)
    return text


def sync(book: Path = ROOT / "book", check: bool = False) -> list[str]:
    """Rewrite (or with ``check``, only compare) the Colab links and install cells of every
    chapter, and the Colab links and ``pip install git+URL@REF`` lines of ``README.md``. Returns
    the files that were (or would be) changed; raises ValueError for a chapter without the
    generated install block at the start of a code cell."""
    url, branch = repository(book.parent / "_config.yml")
    changed = []
    for nb_path in sorted(book.glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        dirty = has_install = False
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            new = _rewrite(src, url, branch, cell["cell_type"] == "code")
            has_install |= cell["cell_type"] == "code" and new.startswith(install_block(url, branch))
            if new != src:
                dirty = True
                cell["source"] = new.splitlines(keepends=True)
        if not has_install:
            raise ValueError(f"{nb_path.name} has no setup cell starting with the Colab install block "
                             "(see ibtools.booklinks.INSTALL_TEMPLATE)")
        if dirty:
            changed.append(nb_path.name)
            if not check:
                nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    readme = book.parent / "README.md"
    if readme.exists():
        text = readme.read_text()
        new = _rewrite(text, url, branch, code=False)
        if new != text:
            changed.append(readme.name)
            if not check:
                readme.write_text(new)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report chapters that disagree")
    args = parser.parse_args(argv)
    changed = sync(check=args.check)
    if args.check and changed:
        print(f"out of sync with _config.yml: {', '.join(changed)} (run python -m ibtools.booklinks)", file=sys.stderr)
        return 1
    print("updated: " + (", ".join(changed) if changed else "nothing to change"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
