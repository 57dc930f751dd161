"""The rendered book, as a reader sees it: serve the built book on localhost, open every page of the
table of contents in headless Chromium, and check that it loads, shows its figures, has no error
output, and has the navigation and the launch/Colab buttons. Screenshots of every page are kept
in ``_build/screenshots`` (a build artifact, not committed). Every page is also read at phone
width (:data:`PHONE`, 390 CSS px): the page must not scroll sideways, nothing may spill out of the
screen except inside a box that scrolls on its own (tables, code blocks), images must fit the
column, and figure text must stay at least :data:`MIN_PHONE_TEXT_PX` tall as shown.

The book comes from the session fixture ``book_html`` (tests/conftest.py): the build ``make book``
made when it is fresh, else a new build (always a new one in CI). Set ``IBTOOLS_BOOK_HTML`` to an
existing ``_build/html`` to check it without building.

Every page gets a clean load: the browser first leaves the previous page for ``about:blank``, then
loads the page and waits, on explicit conditions, until the document at the expected address is
complete and its title is in the DOM. A check that fails says what the browser showed (address,
title, start of the text).

Needs Chromium and chromedriver (Debian: ``apt-get install chromium chromium-driver``) and the
``selenium`` package. Outside CI the test is skipped, with that reason, where they are absent; in
CI (``CI`` set) it fails instead.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from ibtools import booklinks
from needs import require

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
SCREENSHOTS = ROOT / "_build" / "screenshots"
LOAD_TIMEOUT = 60  # seconds for a page (and its images) to load; generous for a loaded machine

pytestmark = pytest.mark.slow


def _toc_pages() -> list[str]:
    text = (ROOT / "_toc.yml").read_text()
    root = re.search(r"^root:\s*(\S+)", text, re.M).group(1)
    return [root] + re.findall(r"-\s*file:\s*(\S+)", text)


@pytest.fixture(scope="module")
def html_dir(request):
    if not (CHROMIUM and DRIVER):
        reason = "Chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs them")
        pytest.skip(reason)
    require("selenium", module_level=False)  # skipped without it, except in CI (CI set): there it fails
    return request.getfixturevalue("book_html")  # checked for a browser first: no build to skip


@pytest.fixture(scope="module")
def server(html_dir):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128  # the default backlog of 5 is less than a page's parallel requests

    handler = functools.partial(Quiet, directory=str(html_dir))
    httpd = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium must not try to download drivers
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,1800",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(LOAD_TIMEOUT)
    yield driver
    driver.quit()


PAGES = _toc_pages()


def _shown(browser) -> str:
    """What the browser shows (address, load state, title, start of the text), for failure messages."""
    try:
        state = browser.execute_script(
            "const article = document.querySelector('article');"
            "return {url: location.href, ready: document.readyState, title: document.title,"
            " text: document.body ? document.body.innerText.slice(0, 500) : '(no body)',"
            " article: article ? article.innerText.slice(0, 300) : '(no article)'};")
    except Exception as err:  # noqa: BLE001 - the browser itself is in trouble: say how
        return f"(the browser could not report its page: {err!r})"
    return (f"url={state['url']!r} readyState={state['ready']!r} title={state['title']!r}\n"
            f"first 500 characters of the text: {state['text']!r}\n"
            f"first 300 characters of the article: {state['article']!r}")


def _load(browser, url: str) -> None:
    """A clean load of ``url``: leave the previous page for about:blank, load the page, and wait
    until the document at ``url`` (not the previous one) is complete."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get("about:blank")
    try:
        browser.get(url)
    except TimeoutException:
        pass  # still loading after LOAD_TIMEOUT: the wait below decides, and says what was shown
    loaded = "return location.href.split('#')[0] === arguments[0] && document.readyState === 'complete';"
    try:
        WebDriverWait(browser, LOAD_TIMEOUT, poll_frequency=0.2).until(lambda b: b.execute_script(loaded, url))
    except TimeoutException:
        pytest.fail(f"{url} did not finish loading within {LOAD_TIMEOUT} s; the browser showed:\n{_shown(browser)}")


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_for_a_reader(page, server, browser, html_dir):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _load(browser, f"{server}/{page}.html")
    assert browser.find_elements(By.CSS_SELECTOR, "article h1"), f"{page} has no title (article h1); the browser showed:\n{_shown(browser)}"
    body = browser.find_element(By.TAG_NAME, "article").text
    for marker in ("Traceback (most recent call last)", "CellExecutionError", "ModuleNotFoundError"):
        assert marker not in body, f"error output on {page}: {marker}"
    assert not browser.find_elements(By.CSS_SELECTOR, ".output.traceback, .output.error")
    # Markdown that a chapter displays (the claims tables) is rendered, not shown as raw text
    raw = [line for line in body.splitlines() if re.search(r"\|\s*(-{3,}|—)\s*\|", line) or line.count(" | ") >= 3]
    assert not raw, f"unrendered Markdown table on {page}: {raw[0][:120]}"
    # figures: every image served by the book has loaded and has pixels (the browser is kept
    # offline, so remote images such as the Colab badge's SVG are not expected to load)
    local_images = "Array.from(document.images).filter(i => i.src.startsWith(location.origin))"
    pending = f"return {local_images}.filter(i => !i.complete).length;"
    try:  # decoding can lag the load event
        WebDriverWait(browser, LOAD_TIMEOUT).until(lambda b: b.execute_script(pending) == 0)
    except TimeoutException:
        pytest.fail(f"images of {page} still loading after {LOAD_TIMEOUT} s; the browser showed:\n{_shown(browser)}")
    broken = browser.execute_script(f"return {local_images}.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);")
    assert broken == [], f"images that did not load on {page}: {broken}"
    is_chapter = (ROOT / f"{page}.ipynb").exists()
    if is_chapter:
        figures = browser.find_elements(By.CSS_SELECTOR, "article .cell_output img")
        assert figures, f"{page} shows no figures; the browser showed:\n{_shown(browser)}"
    # navigation to every page of the table of contents
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "nav.bd-docs-nav a")}
    others = [p for p in PAGES[1:] if p != page]  # the current page is not linked to itself
    missing = [p for p in others if not any(h and h.endswith(f"{Path(p).name}.html") for h in links)]
    assert not missing, f"navigation of {page} lacks {missing}"
    # repository and launch buttons (chapters: Colab on the .ipynb of this page)
    url, branch = booklinks.repository()
    hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.CSS_SELECTOR, "a")]
    assert any(h.rstrip("/") == url for h in hrefs), "repository button"
    if is_chapter:
        colab = booklinks.colab_url(url, branch, Path(page).name + ".ipynb")
        launch = browser.find_elements(By.CSS_SELECTOR, f'a.dropdown-item[href="{colab}"]')
        assert launch, f"Colab launch button of {page} (expected {colab})"
        assert colab in hrefs, "Open-in-Colab badge"
    # a full-page screenshot; the window always returns to its normal size for the next page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    try:
        browser.set_window_size(1280, min(max(int(height), 900), 12000))
        browser.save_screenshot(str(SCREENSHOTS / f"{Path(page).name}.png"))
    finally:
        browser.set_window_size(1280, 1800)


# --- phone width ------------------------------------------------------------------------------------

#: The phone the pages are checked on: a 390 CSS px wide viewport at 3 device pixels per CSS px
#: (an iPhone 12-15), emulated by Chromium with its mobile layout (the viewport meta tag honoured).
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
#: Smallest size (CSS px) at which the smallest figure text (ibtools.plotting.MIN_FONT_PT points,
#: 9 pt) may be shown at phone width. Figures shrink to the column there (no sideways scrolling),
#: so the desktop rule (12 px) cannot hold for a 7-inch figure in a ~360 px column; 6 CSS px is
#: 18 device pixels on such a phone (the height of 6.5-pt print held at reading distance), and a
#: reader can zoom. The desktop rule stays in tests/test_book_html.py.
MIN_PHONE_TEXT_PX = 6.0

_PHONE_LAYOUT = """
const vw = document.documentElement.clientWidth;
const article = document.querySelector('article.bd-article') || document.querySelector('main');
if (!article) return null;
const scrollsItself = el => {  // inside a container that scrolls (or clips) sideways on its own
  for (let p = el.parentElement; p && p !== article.parentElement; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX;
    if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
  }
  return false;
};
const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
const overflowing = [];
for (const el of article.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if ((r.right > vw + 1 || r.left < -1) && !scrollsItself(el)) overflowing.push(
    describe(el) + ' spans ' + Math.round(r.left) + '..' + Math.round(r.right) + ' px: '
    + (el.innerText || el.getAttribute('src') || '').slice(0, 60));
}
const style = getComputedStyle(article);
const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
const images = Array.from(article.querySelectorAll('img'))
  .filter(i => i.src.startsWith(location.origin) && !i.src.endsWith('.svg'))
  .map(i => ({src: i.getAttribute('src'), width: i.getBoundingClientRect().width,
              right: i.getBoundingClientRect().right, natural: i.naturalWidth}));
return {vw: vw, pageWidth: document.documentElement.scrollWidth, column: column,
        overflowing: overflowing.slice(0, 8), nOverflowing: overflowing.length, images: images};
"""


@pytest.fixture
def phone(browser):
    """The browser emulating :data:`PHONE` for one test, then back to the desktop window."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        yield browser
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _png_size_and_dpi(path: Path):
    from test_book_html import _png_size_and_dpi as read  # the desktop legibility test's PNG reader

    return read(path)


def check_phone_layout(browser, url: str, html_dir: Path) -> list[str]:
    """What a reader at phone width would stumble on at ``url`` (empty: nothing): the page
    scrolling sideways, text or images spilling out of the column (tables and code may scroll
    inside their own container), images wider than the column, figure text below
    :data:`MIN_PHONE_TEXT_PX`."""
    from ibtools.plotting import MIN_FONT_PT

    _load(browser, url)
    state = browser.execute_script(_PHONE_LAYOUT)
    if state is None:
        return [f"no article on the page; the browser showed:\n{_shown(browser)}"]
    problems = []
    if state["vw"] != PHONE["width"]:
        problems.append(f"the viewport is {state['vw']} px wide, not the phone's {PHONE['width']} px")
    if state["pageWidth"] > state["vw"] + 1:
        problems.append(f"the page scrolls sideways: {state['pageWidth']} px wide in a {state['vw']} px viewport")
    if state["nOverflowing"]:
        problems.append(f"{state['nOverflowing']} elements spill out of the {state['vw']} px viewport, e.g.:\n  "
                        + "\n  ".join(state["overflowing"]))
    for img in state["images"]:
        if img["width"] > state["column"] + 1 or img["right"] > state["vw"] + 1:
            problems.append(f"{img['src']}: shown {img['width']:.0f} px wide in a {state['column']:.0f} px column")
        file = (html_dir / Path(url.split("://", 1)[1].split("/", 1)[1]).parent / img["src"]).resolve()
        if file.suffix.lower() != ".png" or not file.is_file():
            continue
        width, _, dpi = _png_size_and_dpi(file)
        if not dpi:
            problems.append(f"{img['src']}: PNG does not record its dpi")
            continue
        text_px = MIN_FONT_PT / 72 * img["width"] / (width / dpi)  # CSS px of MIN_FONT_PT-point text
        if text_px < MIN_PHONE_TEXT_PX:
            problems.append(f"{img['src']}: {width / dpi:.1f} in wide, shown {img['width']:.0f} px wide: its "
                            f"{MIN_FONT_PT}-pt text is {text_px:.1f} CSS px (< {MIN_PHONE_TEXT_PX:g})")
    return problems


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_at_phone_width(page, server, phone, html_dir):
    problems = check_phone_layout(phone, f"{server}/{page}.html", Path(html_dir))
    assert not problems, f"{page} at {PHONE['width']} px:\n" + "\n".join(problems)
