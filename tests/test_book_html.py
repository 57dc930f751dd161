"""Static checks of the built book, page by page, on its HTML (no browser): what a reader needs to
find their way and to read the figures.

* every figure image sits in a numbered figure with a caption, and has alt text that describes it
  (not a file path);
* every figure is legible at the size it is shown (the rule is stated at ``MIN_PX_PER_INCH``);
* no page names another chapter in plain text ("chapter 5") instead of linking it;
* every page links the paper the book reproduces (chapters and the intro in their own text; the
  API pages through the page footer);
* the bibliography holds the works the book cites.

The built HTML comes from the session fixture ``book_html`` (the book built once, shared with the
other rendered-book tests) where ``tests/conftest.py`` provides it; otherwise from
``IBTOOLS_BOOK_HTML`` (a ``_build/html`` folder), and without either the page checks are skipped.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest

from ibtools.plotting import MIN_FONT_PT
from book_rules import bad_alt_text
from needs import require

bs4 = require("bs4", "beautifulsoup4")  # skipped without it, except in CI (CI set): there it fails

ROOT = Path(__file__).resolve().parents[1]
PAPER_LINKS = ("openreview.net/forum?id=SkeZisA5t7", "arxiv.org/abs/1902.09037")

#: Width (CSS px) of the text column of a chapter at a 1400 px wide window: the article of
#: sphinx-book-theme 1.3 measured 836 px with 32 px padding on each side (Chromium), less the
#: output area's margin.
COLUMN_PX = 740
#: 9 pt at 100 % zoom is 12 CSS px (96 CSS px per inch). The book draws no text smaller than
#: MIN_FONT_PT points (ibtools.plotting.MIN_FONT_PT; checked on the style file and on every explicit
#: size in the chapters and ibtools by tests/test_figure_text.py), so text stays >= 9 pt on screen exactly
#: when a figure inch is shown with >= 12 * 72 / MIN_FONT_PT CSS px. A PNG of width w px that was
#: drawn at d dpi (its pHYs chunk) is shown min(w, COLUMN_PX) px wide, i.e. at
#: min(w, COLUMN_PX) / (w / d) px per figure inch. Example: the old chapter-3 grid, 16.6 in at
#: 110 dpi, was shown at 740 / 16.6 = 45 px per inch: its 9-pt labels were 5.6 px tall.
MIN_PX_PER_INCH = 12 * 72 / MIN_FONT_PT
#: The works every edition of the book must be able to cite.
REQUIRED_KEYS = {
    "chelombiev2019adaptive", "shwartzziv2017opening", "saxe2018information", "goldfeld2019estimating",
    "geiger2021information", "amjad2019learning", "lorenzen2022information", "kolchinsky2017estimating",
    "czyz2023beyond", "tishby2015deep",
}
PLAIN_CHAPTER = re.compile(r"\b[Cc]hapters?\s+\d")


def _toc_pages() -> list[str]:
    text = (ROOT / "_toc.yml").read_text()
    root = re.search(r"^root:\s*(\S+)", text, re.M).group(1)
    return [root] + re.findall(r"-\s*file:\s*(\S+)", text)


PAGES = _toc_pages()


@pytest.fixture(scope="session")
def html_root(book_html) -> Path:
    """The built ``_build/html`` from the shared ``book_html`` fixture (tests/conftest.py), which
    reuses a fresh ``make book`` build or builds the book, or ``IBTOOLS_BOOK_HTML``."""
    path = Path(book_html)
    if not (path / "book" / "index.html").exists():
        pytest.fail(f"{path} is not a built book (no book/index.html)")
    return path


def _soup(html_root: Path, page: str):
    path = html_root / f"{page}.html"
    assert path.exists(), f"{page} is in _toc.yml but was not built ({path})"
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser"), path


def _article(soup):
    article = soup.find("article", class_="bd-article") or soup.find("main")
    assert article is not None, "page has no article"
    return article


def _content_images(article):
    """Images of the page's own content: figures and cell outputs (not badges or icons)."""
    for img in article.find_all("img"):
        src = img.get("src", "")
        if src.startswith(("http://", "https://", "data:")) or src.endswith(".svg"):
            continue  # the Colab badge and other remote icons
        yield img


def _png_size_and_dpi(path: Path) -> tuple[int, int, float | None]:
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path.name} is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    pos, dpi = 8, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"pHYs":
            ppx, _ppy, unit = struct.unpack(">IIB", data[pos + 8:pos + 17])
            dpi = ppx * 0.0254 if unit == 1 else None
            break
        if kind == b"IDAT":
            break
        pos += 12 + length
    return width, height, dpi


def _shown_width(img, png_width: int) -> float:
    """CSS px the image is shown at in the text column (max-width: 100 %)."""
    style = img.get("style", "") or ""
    width = img.get("width") or (re.search(r"width:\s*([\d.]+(?:px|%))", style) or [None, None])[1]
    if width and str(width).endswith("%"):
        return COLUMN_PX * float(str(width)[:-1]) / 100
    if width:
        return min(float(str(width).rstrip("px")), COLUMN_PX)
    return min(png_width, COLUMN_PX)


def test_png_reader_and_rule_on_a_known_figure(tmp_path):
    """The legibility rule fails the old 16.6-in chapter-3 grid and passes a 7-in figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = {}
    for width_in in (16.6, 7.0):
        fig = plt.figure(figsize=(width_in, 2), dpi=110)
        fig.savefig(tmp_path / "f.png", dpi=110)
        plt.close(fig)
        w, _, dpi = _png_size_and_dpi(tmp_path / "f.png")
        assert dpi == pytest.approx(110, abs=0.5) and w == round(width_in * 110)
        results[width_in] = min(w, COLUMN_PX) / (w / dpi)
    assert results[16.6] < MIN_PX_PER_INCH <= results[7.0]


def test_bibliography_has_the_books_works():
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), re.M))
    assert REQUIRED_KEYS <= keys, f"missing from references.bib: {sorted(REQUIRED_KEYS - keys)}"
    cited = set()
    sources = list((ROOT / "book").rglob("*.md")) + list((ROOT / "book").glob("*.ipynb"))
    for path in sources:
        for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", path.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited and cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"
    assert "chelombiev2019adaptive" in cited


@pytest.mark.parametrize("page", PAGES)
def test_figures_have_number_caption_and_alt(page, html_root):
    soup, _ = _soup(html_root, page)
    problems = []
    for img in _content_images(_article(soup)):
        src = img.get("src", "")
        alt = (img.get("alt") or "").strip()
        if bad_alt_text(alt) or alt == Path(src).name:
            problems.append(f"{src}: alt text {alt!r} is empty or a file path")
        figure = img.find_parent("figure")
        caption = figure.find("figcaption") if figure else None
        if caption is None or not caption.get_text(strip=True):
            problems.append(f"{src}: not in a figure with a caption")
        elif caption.find(class_="caption-number") is None:
            problems.append(f"{src}: caption has no figure number")
    assert not problems, f"{page}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES)
def test_figures_are_legible_at_their_shown_size(page, html_root):
    soup, path = _soup(html_root, page)
    problems = []
    for img in _content_images(_article(soup)):
        src = img.get("src", "")
        file = (path.parent / src).resolve()
        if file.suffix.lower() != ".png":
            continue
        width, _, dpi = _png_size_and_dpi(file)
        if dpi is None:
            problems.append(f"{src}: PNG does not record its dpi (save figures with matplotlib)")
            continue
        px_per_inch = _shown_width(img, width) / (width / dpi)
        if px_per_inch < MIN_PX_PER_INCH:
            problems.append(f"{src}: {width / dpi:.1f} in wide, shown at {px_per_inch:.0f} px per inch "
                            f"(< {MIN_PX_PER_INCH:.0f}: {MIN_FONT_PT}-pt text would show below 9 pt)")
    assert not problems, f"{page}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES)
def test_chapters_are_linked_not_named(page, html_root):
    soup, _ = _soup(html_root, page)
    found = []
    for text in _article(soup).find_all(string=PLAIN_CHAPTER):
        if text.find_parent(["a", "pre", "code", "script", "style"]) is not None:
            continue
        found.extend(m.group(0) for m in PLAIN_CHAPTER.finditer(text))
    assert not found, f"{page} names chapters without linking them: {found}"


@pytest.mark.parametrize("page", PAGES)
def test_page_links_the_paper(page, html_root):
    soup, _ = _soup(html_root, page)
    where = soup if "/api/" in page else _article(soup)  # API pages: the footer's link counts
    links = [a.get("href", "") for a in where.find_all("a")]
    assert any(p in href for href in links for p in PAPER_LINKS), f"{page} has no link to the paper ({PAPER_LINKS[0]})"
