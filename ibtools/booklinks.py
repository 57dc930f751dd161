"""Keep the repository address in one place (``_config.yml``) and every link that needs it in
sync: the Open-in-Colab badge and the Colab install cell of each chapter.

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
REPO_LINE = re.compile(r'^REPO_URL = ".*"(  #.*)?$', re.M)


def repository(config_path: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """``(url, branch)`` from the ``repository:`` block of ``_config.yml``."""
    text = config_path.read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n?)+)", text, re.M)
    if not block:
        raise ValueError(f"{config_path} has no repository: block")
    url = re.search(r"^\s+url:\s*(\S+)", block.group(1), re.M)
    branch = re.search(r"^\s+branch:\s*(\S+)", block.group(1), re.M)
    if not url:
        raise ValueError(f"{config_path}: repository.url is missing")
    return url.group(1).rstrip("/"), branch.group(1) if branch else "main"


def colab_url(url: str, branch: str, notebook: str) -> str:
    path = url.split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/book/{notebook}"


def _rewrite(text: str, url: str, branch: str, code: bool) -> str:
    text = BADGE.sub(lambda m: colab_url(url, branch, m.group(1)), text)
    if code:
        text = REPO_LINE.sub(f'REPO_URL = "{url}"  # from _config.yml: python -m ibtools.booklinks', text)
    return text


def sync(book: Path = ROOT / "book", check: bool = False) -> list[str]:
    """Rewrite (or with ``check``, only compare) the Colab links and install cells of every
    chapter, and the Colab links of ``README.md``. Returns the files that were (or would be)
    changed."""
    url, branch = repository(book.parent / "_config.yml")
    changed = []
    for nb_path in sorted(book.glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        dirty = False
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            new = _rewrite(src, url, branch, cell["cell_type"] == "code")
            if new != src:
                dirty = True
                cell["source"] = new.splitlines(keepends=True)
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
