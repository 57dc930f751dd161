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


def test_exact_sentence_separates_constant_from_changing_activations():
    import pandas as pd

    rows = []
    for seed in range(4):
        for epoch in (0, 10, 100):
            rows.append(("abs", seed, epoch, 5, 12.0))
            # relu: h5 of seeds 0 and 1 merges inputs late (information lost by the network itself)
            rows.append(("relu", seed, epoch, 5, 12.0 - (3.0 if seed < 2 and epoch == 100 else 0.0)))
    exact = pd.DataFrame(rows, columns=["activation", "seed", "epoch", "layer", "i_xt"])
    text = " ".join(findings._exact_sentence(exact).split())
    assert "never changes in the networks of abs that trained: 12.00 bits" in text
    assert "relu (in 50% of the networks in layer h5, down to 9.00 bits)" in text
    only_constant = " ".join(findings._exact_sentence(exact[exact.activation == "abs"]).split())
    assert "It does change" not in only_constant


def test_findings_cli_check_compares_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from ibtools import findings

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{findings.START}\nstale numbers\n{findings.END}\n")
    monkeypatch.setattr(findings, "FILES", {readme: ""})
    monkeypatch.setattr(findings, "ROOT", tmp_path)
    monkeypatch.setattr(findings, "compute", lambda: {})
    monkeypatch.setattr(findings, "render", lambda values, link: "fresh numbers")
    assert findings.main(["--check"]) == 1
    assert "stale numbers" in readme.read_text()  # --check writes nothing
    assert "out of date in README.md" in capsys.readouterr().err
    assert findings.main([]) == 0 and "fresh numbers" in readme.read_text()
    assert findings.main(["--check"]) == 0
