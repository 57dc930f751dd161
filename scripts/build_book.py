"""Build the book into ``_build/html`` the one way the project builds it.

Used by ``make book`` and by the tests' session fixture ``book_html`` (tests/conftest.py), so a
newcomer's ``make book`` followed by ``make test`` executes every chapter once, not twice.

* **Strict.** ``jupyter-book build -W --keep-going``; ``_config.yml`` makes a failing chapter fail
  the build.
* **Execution cache.** ``_config.yml`` sets ``execute_notebooks: cache``: jupyter-cache (in
  ``_build/.jupyter_cache``) stores each executed chapter, so a rebuild re-executes only the
  chapters whose code cells changed. Jupyter-cache keys a chapter on its code cells alone, so the
  cache is emptied whenever what the chapters import or read changes (``ibtools/``, ``results/``,
  ``requirements.txt``; their hash is kept in ``_build/.jupyter_cache/inputs.key``).
* **Fresh builds.** ``--fresh`` (or the ``CI`` environment variable) empties the cache first, so
  every chapter executes.
* **Stamp.** After a successful build, ``_build/book.stamp`` records the hash of the book's sources
  (``book/``, ``ibtools/``, ``results/``, ``_config.yml``, ``_toc.yml``, ``requirements.txt``).
  :func:`is_fresh` tells the tests whether ``_build/html`` was built from the sources as they are.
* **One thread per kernel.** Chapter kernels compute with ``OMP_NUM_THREADS=1`` and
  ``IBTOOLS_THREADS=1`` unless the caller set them: the chapters train many tiny networks, and on a
  loaded 2-core machine torch's extra threads wait for each other (chapter 1 took 194 s instead of
  9 s). Set them in the environment to override.

Usage: ``python scripts/build_book.py [--fresh] [--check]`` (``--check`` only reports whether the
existing build is fresh: exit status 0 if so, 1 if not).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
HTML = BUILD / "html"
STAMP = BUILD / "book.stamp"
CACHE = BUILD / ".jupyter_cache"
CACHE_KEY = CACHE / "inputs.key"
LOG = BUILD / "book-build.log"
JUPYTER_BOOK = [str(Path(sys.executable).with_name("jupyter-book"))]  # the command that builds

SOURCES = ("book", "ibtools", "results", "_config.yml", "_toc.yml", "requirements.txt")
# what chapters import or read besides their own code cells (which jupyter-cache hashes itself)
CACHE_INPUTS = ("ibtools", "results", "requirements.txt")
# run-time litter that is not a source (mirrors .gitignore)
_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "scratch", "checkpoints", "quarantine"}
_SKIP_SUFFIXES = (".pyc", ".tmp", ".partial", ".ckpt")


def sources_hash(paths=SOURCES, root: Path | None = None) -> str:
    """SHA-256 over the relative path and bytes of every source file under ``paths`` (relative
    to ``root``, by default the project)."""
    root = ROOT if root is None else root
    digest = hashlib.sha256()
    for name in paths:
        top = root / name
        files = [top] if top.is_file() else sorted(
            p for p in top.rglob("*")
            if p.is_file()
            and not any(part in _SKIP_DIRS or part.startswith(".") for part in p.relative_to(root).parts)
            and not p.name.endswith(_SKIP_SUFFIXES)
        ) if top.exists() else []
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_stamp() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def is_fresh(run_id: str | None = None) -> bool:
    """Whether ``_build/html`` was built, successfully, from the sources as they are now (and, if
    ``run_id`` is given, by that run)."""
    stamp = read_stamp()
    if not (HTML / "index.html").exists() or stamp.get("sources") != sources_hash():
        return False
    return run_id is None or stamp.get("run_id") == run_id


@contextlib.contextmanager
def _locked():
    """One build at a time (pytest-xdist workers share the build)."""
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / ".book.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_cache(fresh: bool) -> str:
    key = sources_hash(CACHE_INPUTS)
    try:
        stale = CACHE_KEY.read_text().strip() != key
    except OSError:
        stale = True
    if fresh or stale:
        shutil.rmtree(CACHE, ignore_errors=True)
        why = "fresh build" if fresh else "ibtools/, results/ or requirements.txt changed"
        print(f"build_book: execution cache emptied ({why}); every chapter executes", flush=True)
    # from here on the cache only receives chapters executed with these inputs, so the key holds
    # even if this build fails later (chapters that did execute stay cached)
    CACHE.mkdir(parents=True, exist_ok=True)
    CACHE_KEY.write_text(key + "\n")
    return key


def build(fresh: bool = False, run_id: str | None = None, quiet: bool = False) -> float:
    """Build the book into ``_build/html``; returns the seconds it took. Raises
    ``RuntimeError`` (with the end of the build log) if the build fails."""
    with _locked():
        return _build_locked(fresh, run_id, quiet)


def _build_locked(fresh: bool, run_id: str | None, quiet: bool) -> float:
    started = time.perf_counter()
    sources = sources_hash()  # the sources as the build reads them
    STAMP.unlink(missing_ok=True)
    _prepare_cache(fresh)
    # A clean Sphinx build: without its saved environment (.doctrees) Sphinx re-reads every page, so
    # -W sees every page's warnings and every chapter goes through the execution cache (kept
    # doctrees would let Sphinx skip an unchanged notebook, and show its old outputs, even after
    # the cache was emptied because ibtools/ or results/ changed). Executing is what the cache
    # saves; re-reading a cached chapter takes seconds.
    for stale in (HTML, BUILD / "jupyter_execute", BUILD / ".doctrees"):
        shutil.rmtree(stale, ignore_errors=True)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("IBTOOLS_THREADS", "1")
    cmd = [*JUPYTER_BOOK, "build", str(ROOT), "-W", "--keep-going"]
    with open(LOG, "w") as log:
        if quiet:
            result = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            result = proc
            result.wait()
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = LOG.read_text()[-6000:]
        raise RuntimeError(f"the book build failed (exit {result.returncode}, {seconds:.0f} s); "
                           f"full log in {LOG}:\n{tail}")
    stamp = {"sources": sources, "run_id": run_id, "fresh": fresh, "seconds": round(seconds, 1),
             "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = STAMP.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=1) + "\n")
    tmp.replace(STAMP)
    return seconds


def ensure_built(fresh: bool = False, run_id: str | None = None, quiet: bool = True) -> Path:
    """``_build/html``, built now unless a fresh build of the current sources exists. With
    ``fresh``, only a build made by this ``run_id`` counts (CI: one build per test session, shared
    by the pytest-xdist workers)."""
    with _locked():  # waits for a build in progress in another worker, then reuses it
        if not is_fresh(run_id if fresh else None):
            _build_locked(fresh, run_id, quiet)
    return HTML


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true",
                        help="execute every chapter (empty the execution cache first); implied by CI")
    parser.add_argument("--check", action="store_true",
                        help="only say whether _build/html is fresh (exit 0) or not (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        fresh = is_fresh()
        print("_build/html is " + ("fresh" if fresh else "stale or missing"))
        return 0 if fresh else 1
    try:
        seconds = build(fresh=args.fresh or bool(os.environ.get("CI")))
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"build_book: built _build/html in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
