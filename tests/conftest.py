import importlib.util
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist (make test runs two workers on two cores) every process, and every notebook
# kernel it starts, computes with one thread: oversubscribed OpenMP threads wait for each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["IBTOOLS_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:  # ibtools' policy: one thread unless IBTOOLS_THREADS says otherwise
    from ibtools.engine import set_threads

    set_threads()


@pytest.fixture(scope="session")
def task():
    from ibtools.data import tishby_task

    return tishby_task()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config, items):
    # a test that needs the built book is slow (a build executes every chapter); `make test-fast`
    # deselects the slow marker
    for item in items:
        if "book_html" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            module = item.nodeid.split("::", 1)[0]
            if module not in BOOK_MODULES:
                raise pytest.UsageError(f"{module} reads the built book (fixture book_html): add it to BOOK_MODULES "
                                        "in tests/conftest.py, so that pytest-xdist runs it beside the build")


#: The test modules that read the built book (the ``book_html`` fixture). Under pytest-xdist they
#: form one work unit (see :class:`_BookAwareScheduling`).
BOOK_MODULES = frozenset({"tests/test_book_html.py", "tests/test_rendered_book.py"})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` (what ``make test`` uses), except that the modules of
    :data:`BOOK_MODULES` are one scope, so one worker builds the book while the other runs the
    rest of the suite. Plain loadscope sends the two largest modules, both readers of the book,
    one to each worker first: the second then waits, idle, for the whole build that the first
    started. (``--dist loadgroup`` cannot group them: pytest-xdist 3.8 marks a group by editing
    ``item._nodeid``, which pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class _BookAwareScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "book" if module in BOOK_MODULES else module

    return _BookAwareScheduling(config, log)


def _build_book_module():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex


@pytest.fixture(scope="session")
def book_html() -> Path:
    """The built book's HTML folder (``_build/html``), shared by every test that reads it.

    * ``IBTOOLS_BOOK_HTML`` set: that folder, as it is (no build).
    * otherwise the build ``make book`` made, if its stamp says it was built from the sources as
      they are now (``scripts/build_book.py``); else the book is built now, once per test session
      (pytest-xdist workers wait for each other's build and reuse it).
    * in CI (``CI`` set) the book is always built from scratch, every chapter executed, once per
      session.
    """
    given = os.environ.get("IBTOOLS_BOOK_HTML")
    if given:
        html = Path(given)
        if not (html / "index.html").is_file():
            pytest.fail(f"IBTOOLS_BOOK_HTML={given} holds no index.html (point it at a built _build/html)")
        return html
    build_book = _build_book_module()
    try:
        return build_book.ensure_built(fresh=bool(os.environ.get("CI")), run_id=_RUN_ID, quiet=True)
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)


# Environment variables that change what ibtools reads. A test that sets one must undo it: the
# variable would otherwise reach every later test of its worker and every chapter kernel that
# worker starts (a leaked IBTOOLS_RESULTS once made chapter 5 look for the re-run beside a
# temporary copy of results/paper).
_GUARDED_ENV = ("IBTOOLS_RESULTS", "IBTOOLS_THREADS", "OMP_NUM_THREADS")


@pytest.fixture(autouse=True)
def _no_leaked_environment():
    before = {name: os.environ.get(name) for name in _GUARDED_ENV}
    yield
    after = {name: os.environ.get(name) for name in _GUARDED_ENV}
    changed = {name: (before[name], after[name]) for name in _GUARDED_ENV if before[name] != after[name]}
    assert not changed, f"the test left environment variables changed (before, after): {changed}"
