"""ibtools: information-plane analysis of small neural networks.

Estimators of I(X;T) and I(T;Y) (binning, entropy-based adaptive binning, KDE bounds, adaptive
KDE), the 12-bit task of Shwartz-Ziv & Tishby regenerated offline, and an engine that trains many
networks at once while recording their information planes.

Installed as the distribution ``ibtools-infoplane`` (``pip install ibtools`` installs an unrelated
project); imported as ``ibtools``.
"""

from ._version import __version__

__all__ = ["__version__", "provenance_summary"]


def provenance_summary() -> dict:
    """What produced a result, for a page footer or a log line.

    Returns
    -------
    dict
        ``ibtools`` (this package's version), ``git_commit`` (the commit of the ibtools source in
        use, ``-dirty`` if it has uncommitted changes; None when unknown, e.g. a copy installed
        from an archive), ``python``, ``numpy`` and ``torch`` versions. Imports torch.
    """
    import platform

    import numpy
    import torch

    from ._version import source_commit

    return {
        "ibtools": __version__,
        "git_commit": source_commit(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }
