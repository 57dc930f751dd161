"""The package as users get it: build the sdist and, from it, the wheel (what ``pip install
<clone>`` and ``python -m build`` do); both must hold every file of ``ibtools/`` in the source
tree (so a new subpackage or data file is caught without editing this test). The wheel, installed
into a fresh virtual environment (regular install, not editable, none of the book's tools),
imports every module, runs ``python -m ibtools --help``, computes estimates with known values and
runs the README's library example.
"""

import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import ibtools
from freshenv import ROOT, clean_env, fresh_venv, package_files, pyproject, source_files

PYPROJECT = pyproject()
DIST = PYPROJECT["project"]["name"]
BOOK_TOOLS = ["IPython", "jupyter_book", "papermill", "nbformat", "pytest", "distributed", "selenium"]


def _build(backend_call: str, cwd: Path, out: Path) -> Path:
    """Run a setuptools PEP 517 hook in ``cwd`` (no build isolation: offline, with the installed
    setuptools, which must satisfy pyproject's build requirement)."""
    out.mkdir(exist_ok=True)
    code = f"import sys; from setuptools import build_meta as b; print(b.{backend_call}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``(sdist, wheel)``: the sdist built from a copy of the source tree, the wheel from the sdist."""
    tmp = tmp_path_factory.mktemp("build")
    requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    for req in requires:  # the setuptools used here must be one the build system accepts
        assert req.specifier.contains(metadata.version(req.name)), f"{req} vs installed {metadata.version(req.name)}"
    src = tmp / "src"
    for rel in source_files():
        if rel.split("/", 1)[0] in ("results", "book"):  # large and not part of the package
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    sdist = _build("build_sdist", src, tmp / "dist")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (top,) = (tmp / "unpacked").iterdir()
    wheel = _build("build_wheel", top, tmp / "dist")
    return sdist, wheel


@pytest.mark.slow
def test_sdist_and_wheel_hold_every_file_of_the_package(built):
    sdist, wheel = built
    expected = package_files()
    assert "ibtools/estimators/__init__.py" in expected and "ibtools/ibtools.mplstyle" in expected
    with tarfile.open(sdist) as tar:
        in_sdist = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name}
    in_sdist = {f for f in in_sdist if f.startswith("ibtools/")}
    assert in_sdist == expected, f"sdist lacks {sorted(expected - in_sdist)}, has extra {sorted(in_sdist - expected)}"
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = {n for n in whl.namelist() if not n.split("/", 1)[0].endswith(".dist-info")}
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        meta = whl.read(meta).decode()
    assert in_wheel == expected, f"wheel lacks {sorted(expected - in_wheel)}, has extra {sorted(in_wheel - expected)}"
    assert f"\nName: {DIST}\n" in meta and f"\nVersion: {ibtools.__version__}\n" in meta
    assert Path(wheel).name.startswith(f"{DIST.replace('-', '_')}-{ibtools.__version__}-py3-none-any")


# Run inside the fresh venv: every module of the installed package, from the installed files, and
# one estimate with a known value.
CHECK = r"""
import importlib, json, pkgutil, sys
from importlib import metadata, util
import ibtools
names = sorted(m.name for m in pkgutil.walk_packages(ibtools.__path__, "ibtools.") if m.name != "ibtools.__main__")
for name in names:
    importlib.import_module(name)
from ibtools import plotting
plotting.use_style()  # the style file shipped as package data
import numpy as np
from ibtools import estimators as E
x = np.repeat(np.arange(4.0), 256)[:, None]   # 4 equally likely values: H(T) = 2 bits
y = (x[:, 0] >= 2).astype(int)                # labels a function of T with 2 equal classes: 1 bit
est = E.ebab(x, y)
print(json.dumps({"file": ibtools.__file__, "modules": names, "version": ibtools.__version__,
                  "dist_version": metadata.version(sys.argv[1]), "summary": ibtools.provenance_summary(),
                  "absent": [m for m in sys.argv[2:] if util.find_spec(m) is None],
                  "ebab": [float(est.i_xt), float(est.i_ty)]}))
"""


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use `ibtools` as a library", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_wheel_in_a_fresh_environment(built, tmp_path):
    _, wheel = built
    deps = PYPROJECT["project"]["dependencies"]
    python, site = fresh_venv(tmp_path / "venv", deps + ["pip"])
    run = dict(capture_output=True, text=True, cwd=tmp_path, timeout=600)  # cwd: no ibtools/ next to it
    # dependencies are found installed (no index: nothing may be downloaded), the package is installed
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-index", str(wheel)],
                          env=clean_env(), **run)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    done = subprocess.run([str(python), "-c", CHECK, DIST, *BOOK_TOOLS], env=clean_env(), **run)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(info["file"]).resolve().is_relative_to(site.resolve()), info["file"]  # the installed copy
    expected = {f[:-3].replace("/", ".").removesuffix(".__init__") for f in package_files() if f.endswith(".py")}
    assert set(info["modules"]) == expected - {"ibtools", "ibtools.__main__"}
    assert info["version"] == info["dist_version"] == ibtools.__version__
    assert info["summary"]["ibtools"] == ibtools.__version__ and info["summary"]["git_commit"] is None  # a wheel
    assert info["absent"] == BOOK_TOOLS, "the fresh environment must not have the book's tools"
    assert info["ebab"] == pytest.approx([2.0, 1.0], abs=1e-9)

    done = subprocess.run([str(python), "-m", "ibtools", "--help"], env=clean_env(), **run)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-3000:]
    assert all(cmd in done.stdout for cmd in ("run", "sweep", "paper"))

    done = subprocess.run([str(python), "-c", _readme_example()], env=clean_env(), **run)
    assert done.returncode == 0, done.stderr[-3000:]
    ebab = re.search(r"EBAB: I\(X;T\) = ([\d.]+) bits, I\(T;Y\) = ([\d.]+) bits", done.stdout)
    assert ebab and 0 < float(ebab.group(1)) <= 12 and 0 <= float(ebab.group(2)) <= 1, done.stdout


def test_version_is_written_once():
    assert PYPROJECT["project"]["dynamic"] == ["version"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ibtools._version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", ibtools.__version__)
    from ibtools import _version

    assert _version.DIST_NAME == DIST  # source_commit() reads pip's record of this distribution


def test_sidecars_record_the_version_and_this_checkout():
    from ibtools.results import provenance

    meta = provenance()
    assert meta["ibtools"] == ibtools.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # running from a git checkout of the package
        assert meta["git_commit"].removesuffix("-dirty") == head.stdout.strip()
    assert ibtools.provenance_summary()["git_commit"] == meta["git_commit"]


def test_commit_of_another_repository_is_not_reported(tmp_path, monkeypatch):
    """A package copied into some other git repository (a venv inside a user's project) must not
    report that project's commit."""
    from ibtools import _version

    other = tmp_path / "project"
    (other / "lib" / "ibtools").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    (other / "x").write_text("x")
    subprocess.run(["git", "-C", str(other), "add", "x"], check=True)
    subprocess.run(["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(_version, "PACKAGE_DIR", other / "lib" / "ibtools")
    monkeypatch.setattr(_version, "DIST_NAME", "no-such-distribution-installed")
    assert _version.source_commit() is None
    monkeypatch.setattr(_version, "PACKAGE_DIR", other / "ibtools")  # the package at the checkout's top
    assert _version.source_commit() == subprocess.run(["git", "-C", str(other), "rev-parse", "HEAD"],
                                                      capture_output=True, text=True).stdout.strip()
