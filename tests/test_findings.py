"""The findings paragraphs of README.md and book/index.md are what the stored study gives."""

import pytest

from ibtools import findings


@pytest.fixture(scope="module")
def values():
    try:
        return findings.compute()
    except FileNotFoundError as err:
        pytest.skip(str(err))


@pytest.mark.parametrize("path", list(findings.FILES), ids=lambda p: p.name)
def test_findings_block_matches_the_data(values, path):
    text = path.read_text()
    block = text.split(findings.START, 1)[1].split(findings.END, 1)[0].strip()
    assert block == findings.render(values, findings.FILES[path]).strip(), (
        f"{path.name}: findings are stale; run `python -m ibtools.findings`")


def test_replace_block_needs_markers():
    assert findings.replace_block(f"a {findings.START} old {findings.END} b", "new") == \
        f"a {findings.START}\nnew\n{findings.END} b"
    with pytest.raises(ValueError, match="no findings block"):
        findings.replace_block("no markers", "x")
