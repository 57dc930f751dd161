"""The book's kernel stack and its per-cell timeout (issue 15, item 8).

Two builds in three hung on a busy machine: ipykernel 7.4.0's kernels died with
``zmq.error.ZMQError: Socket operation on non-socket`` and the build waited out a 1200-s cell
timeout. The fix pins the kernel stack to ipykernel 6.x (requirements.txt says why) and sets a
per-cell timeout in ``_config.yml``. These tests check that the environment is the pinned stack,
that the timeout reaches myst-nb, and that a hanging cell fails the execution within the timeout
instead of hanging it, through the very client ``jupyter-book build`` uses for
``execute_notebooks: cache`` (myst-nb's cache client -> jupyter-cache -> nbclient).
"""

from __future__ import annotations

import re
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The kernel stack: the packages that start kernels and carry their messages.
KERNEL_STACK = ("ipykernel", "jupyter-client", "pyzmq")
#: Longest per-cell timeout (seconds) the book may use: the heaviest cell needs ~3 CPU minutes and
#: took up to 880 s at load 14-15 on 2 cores (_config.yml); a hang must not cost more than that.
MAX_CELL_TIMEOUT_S = 900


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def stack_problems(requirements: str, installed: dict[str, str]) -> list[str]:
    """What is wrong with the kernel stack ``installed`` (name -> version) for ``requirements``."""
    pins = _pins(requirements)
    problems = []
    for name in KERNEL_STACK:
        if name not in pins:
            problems.append(f"requirements.txt does not pin {name} exactly (==)")
        elif installed.get(name) != pins[name]:
            problems.append(f"{name} {installed.get(name)} is installed, requirements.txt pins {pins[name]}")
    for where, value in (("requirements.txt", pins.get("ipykernel")), ("installed", installed.get("ipykernel"))):
        if value is not None and not value.startswith("6."):
            problems.append(f"ipykernel {value} ({where}) is not 6.x: ipykernel 7 kernels died with "
                            "'ZMQError: Socket operation on non-socket' on a loaded machine (issue 15)")
    return problems


def test_stack_check_refuses_ipykernel_7():
    """The check fails on the stack that hung the build (ipykernel 7.4.0) and on a loose pin."""
    requirements = (ROOT / "requirements.txt").read_text()
    pins = _pins(requirements)
    old = {**{n: pins[n] for n in KERNEL_STACK}, "ipykernel": "7.4.0"}
    assert any("7.4.0 is installed" in p for p in stack_problems(requirements, old))
    assert any("not 6.x" in p for p in stack_problems(requirements, old))
    loose = requirements.replace(f"ipykernel=={pins['ipykernel']}", "ipykernel>=6")
    assert any("does not pin ipykernel" in p for p in stack_problems(loose, {n: pins[n] for n in KERNEL_STACK}))
    assert stack_problems(requirements, {n: pins[n] for n in KERNEL_STACK}) == []


def test_installed_kernel_stack_is_the_pinned_one():
    installed = {name: version(name) for name in KERNEL_STACK}
    problems = stack_problems((ROOT / "requirements.txt").read_text(), installed)
    assert not problems, "\n".join(problems)


def _book_config() -> dict:
    """The Sphinx configuration ``jupyter-book build`` derives from ``_config.yml``."""
    from jupyter_book.config import get_final_config

    config, _ = get_final_config(user_yaml=ROOT / "_config.yml", cli_config={"latex_individualpages": False},
                                 sourcedir=ROOT)
    return config


def test_cell_timeout_is_set_and_bounded():
    execute = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    timeout = execute.get("timeout")
    assert isinstance(timeout, int) and not isinstance(timeout, bool), f"_config.yml execute.timeout is {timeout!r}"
    assert 0 < timeout <= MAX_CELL_TIMEOUT_S, f"execute.timeout {timeout} s is not in (0, {MAX_CELL_TIMEOUT_S}]"
    config = _book_config()
    assert config["nb_execution_timeout"] == timeout  # what myst-nb gets
    assert config["nb_execution_raise_on_error"] is True and config["nb_execution_allow_errors"] is False


class _Logger:
    """Enough of myst-nb's logger interface (messages are kept, for the failure message)."""

    def __init__(self):
        self.messages = []

    def _log(self, msg, *args, **kwargs):
        self.messages.append(str(msg))

    debug = info = warning = error = critical = _log


#: The hanging cell: sleeps much longer than the timeout the test gives it.
SLEEP_S, TIMEOUT_S = 60, 5


def test_a_hanging_cell_fails_at_the_timeout(tmp_path):
    """A cell that sleeps 60 s under a 5-s timeout makes myst-nb's cache client raise ExecutionError,
    caused by nbclient's CellTimeoutError (without a working timeout the cell ends normally after
    60 s and nothing is raised); the book's own execution settings (mode, errors, temp folder)
    with only the timeout and the cache folder changed."""
    import nbformat
    from myst_nb.core.config import NbParserConfig
    from myst_nb.core.execute import ExecutionError, NotebookClientCache, create_client
    from nbclient.exceptions import CellTimeoutError

    config = _book_config()
    settings = {k[len("nb_"):]: v for k, v in config.items() if k.startswith("nb_execution_")}
    settings.update(execution_timeout=TIMEOUT_S, execution_cache_path=str(tmp_path / "cache"))
    assert settings["execution_mode"] == "cache"
    nb_config = NbParserConfig(**settings)

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(f"import time\ntime.sleep({SLEEP_S})")]
    path = tmp_path / "hang.ipynb"
    nbformat.write(nb, path)

    logger = _Logger()
    client = create_client(nbformat.read(path, as_version=4), str(path), nb_config, logger)
    assert isinstance(client, NotebookClientCache)
    start = time.monotonic()
    with pytest.raises(ExecutionError) as info:
        with client:
            pass
    elapsed = time.monotonic() - start
    # the cell would have ended normally after SLEEP_S: only the timeout makes it an error
    assert isinstance(info.value.__cause__, CellTimeoutError), (
        f"after {elapsed:.0f} s: {info.value.__cause__!r}\n" + "\n".join(logger.messages))
