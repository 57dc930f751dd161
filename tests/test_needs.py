"""A missing test dependency skips its tests outside CI and fails them in CI (tests/needs.py).

Before, ``pytest.importorskip("bs4")`` skipped every HTML check of the built book where
beautifulsoup4 was missing, in CI too, and the run stayed green.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from needs import require

ROOT = Path(__file__).resolve().parents[1]
MISSING = "ibtools_test_no_such_module"


def test_require_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} is not importable"):
        require(MISSING)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="In CI .* an error, not a skip"):
        require(MISSING)
    assert require("json").dumps([]) == "[]"


def test_test_dependencies_are_pinned():
    pins = {m.group(1).lower(): m.group(2) for m in
            re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)}
    for package in ("beautifulsoup4", "selenium"):
        assert package in pins, f"requirements.txt does not pin {package}"
    for path in ROOT.joinpath("tests").glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        for module in re.findall(r"importorskip\(\s*[\"'](bs4|selenium)[\"']", path.read_text()):
            pytest.fail(f"{path.name} skips without {module} even in CI: use needs.require")


def _pytest_without(module: str, test_file: str, ci: bool, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run pytest on ``test_file`` in a subprocess where importing ``module`` fails."""
    blocker = tmp_path / "blocked" / module
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(f"raise ImportError('{module} blocked by the test')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), str(ROOT)])
    env["IBTOOLS_BOOK_HTML"] = str(tmp_path / "no-book")  # never build the book here
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test_file],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("ci", [False, True], ids=["outside-CI", "CI"])
def test_html_checks_need_bs4_in_ci(ci, tmp_path):
    run = _pytest_without("bs4", "tests/test_book_html.py", ci, tmp_path)
    out = run.stdout + run.stderr
    assert "bs4 is not importable" in out, out[-3000:]
    if ci:
        assert run.returncode != 0, f"CI run without bs4 passed:\n{out[-3000:]}"
    else:
        # 5: pytest's "no tests ran" (the whole file skipped at import), not a failure
        assert run.returncode in (0, 5) and "1 skipped" in out and "failed" not in out, out[-3000:]


def test_rendered_book_needs_selenium_in_ci(tmp_path):
    """(Outside CI the fixture skips, as test_require_skips_outside_ci_and_fails_in_ci shows.)"""
    import test_rendered_book as rendered

    run = _pytest_without("selenium", "tests/test_rendered_book.py", True, tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode not in (0, 5) and "error" in out.lower(), f"CI run without selenium passed:\n{out[-3000:]}"
    if rendered.CHROMIUM and rendered.DRIVER:  # else the browser is what is missing first
        assert "selenium is not importable" in out, out[-3000:]
