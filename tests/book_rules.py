"""Rules the book's sources and its rendered pages share, written once.

The rendered-book test (``test_book_html.py``) applies them to the built HTML and the source test
(``test_notebooks.py``) to the chapters without a build, so the two can never disagree.
"""

from __future__ import annotations

import re

#: Alt text that reads as a file path (a slash or backslash anywhere, or an image suffix at the
#: end): a screen reader would read out a path instead of describing the figure.
ALT_TEXT_AS_FILE_PATH = re.compile(r"[/\\]|\.(png|jpe?g|svg|gif)$", re.I)


def bad_alt_text(alt: str | None) -> bool:
    """True when ``alt`` is missing, blank or reads as a file path (:data:`ALT_TEXT_AS_FILE_PATH`)."""
    return not (alt or "").strip() or bool(ALT_TEXT_AS_FILE_PATH.search(alt.strip()))
