"""Test dependencies that may be absent outside CI but must be there in CI.

:func:`require` imports a module a test file needs. Where it is missing, the tests are skipped
with the reason, except in CI (the ``CI`` environment variable set), where a missing test
dependency fails the run: a CI run that silently skipped the rendered-book checks would look green
without having checked anything. The packages come from requirements.txt, where they are pinned.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, package: str | None = None, *, module_level: bool = True) -> ModuleType:
    """Import ``module``; if that fails, skip (outside CI) or fail (in CI) with the reason.

    Parameters
    ----------
    module : str
        The module to import (``"bs4"``).
    package : str, optional
        The distribution that provides it, for the message (``"beautifulsoup4"``).
    module_level : bool
        Whether the call is at module level (the whole file is skipped) or in a test or fixture.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = (f"{module} is not importable ({exc}); install {package or module} "
                  "(pip install -r requirements.txt)")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}. In CI (CI is set) a missing test dependency is an error, not a skip",
                        pytrace=False)
        pytest.skip(reason, allow_module_level=module_level)
