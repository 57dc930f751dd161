"""The command line's structure: one ``_cmd_<name>`` function per subcommand, dispatched by
``main()``, which maps the errors a user can fix to one line and an exit code; and ``--help``
that states every option's default exactly once.

Runs nothing heavy: the subcommand functions are replaced by stand-ins where a test only
checks the dispatch. The end-to-end runs of the commands are in tests/test_hardening.py,
tests/test_sweep.py and tests/test_settings.py.
"""

from __future__ import annotations

import argparse
import errno
import os

import pytest

from ibtools import cli

#: Each subcommand, the least it needs to parse, and the function that runs it.
COMMANDS = {
    "run": (["--out", "x"], "_cmd_run"),
    "sweep": (["--cache", "x"], "_cmd_sweep"),
    "paper": ([], "_cmd_paper"),
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_subcommand_is_covered_here():
    assert set(_subparsers(cli.build_parser())) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_subcommand_names_its_own_function(command):
    extra, name = COMMANDS[command]
    args = cli.build_parser().parse_args([command, *extra])
    assert args.command == command
    assert args.func is getattr(cli, name)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_main_runs_the_subcommand_function_and_returns_its_code(command, monkeypatch):
    extra, name = COMMANDS[command]
    calls = []

    def fake(args):
        calls.append(args)
        return 7

    monkeypatch.setattr(cli, name, fake)
    for other_command, (_, other) in COMMANDS.items():  # and no other subcommand's function
        if other != name:
            monkeypatch.setattr(cli, other, lambda args, _o=other_command: pytest.fail(f"{_o} ran"))
    assert cli.main([command, *extra, "--threads", "1"]) == 7
    assert len(calls) == 1 and calls[0].command == command and calls[0].threads == 1


def test_no_subcommand_prints_the_overview_and_returns_2(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "usage: python -m ibtools" in out and "{run,sweep,paper}" in out


def _raises(exc):
    def fake(args):
        raise exc
    return fake


@pytest.mark.parametrize("exc, code, says", [
    (ValueError("--out x: bad"), 2, "python -m ibtools run: error: --out x: bad"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), 1, "python -m ibtools run: error: [Errno 28]"),
    (KeyboardInterrupt(), 130, "interrupted; finished work is saved"),
])
def test_errors_a_user_can_fix_are_one_line_and_an_exit_code(exc, code, says, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_cmd_run", _raises(exc))
    assert cli.main(["run", "--out", "x", "--threads", "1"]) == code
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_failed_sweep_units_return_1_and_other_runtime_errors_propagate(monkeypatch, capsys):
    from ibtools.distributed import SweepFailed

    monkeypatch.setattr(cli, "_cmd_sweep", _raises(SweepFailed("1 of 4 units failed")))
    assert cli.main(["sweep", "--cache", "x", "--threads", "1"]) == 1
    assert "re-run to retry the failed ones" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_cmd_sweep", _raises(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["sweep", "--cache", "x", "--threads", "1"])


# -- --help --------------------------------------------------------------------------------------

def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """One option's help text as --help prints it (its default added by the formatter)."""
    if not action.help or action.help is argparse.SUPPRESS:
        return ""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def _parsers():
    top = cli.build_parser()
    return [("", top), *sorted(_subparsers(top).items())]


@pytest.mark.parametrize("command", ["", *sorted(COMMANDS)])
def test_help_states_every_default_exactly_once(command, capsys):
    parser = dict(_parsers())[command]
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"] if command else ["--help"])
    assert exit_.value.code == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert printed.startswith("usage: python -m ibtools")
    stated = 0
    for action in parser._actions:
        text = _expanded_help(parser, action)
        assert text.lower().count("default") <= 1, (command, action.option_strings, text)
        shows_default = not (action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0)
        if shows_default:  # an option with a real default says what it is
            assert "default" in text.lower(), (command, action.option_strings, text)
        assert "default: None" not in text and "default: False" not in text and "['" not in text
        stated += text.count("(default:")
    # what is printed holds each option's help once, so no default appears twice on the page
    assert printed.count("(default:") == stated
    if command:
        assert stated > 0


def test_help_of_run_shows_the_paper_defaults_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 8000)", "(default: 256)", "(default: relu)", "(default: 10 7 5 4 3)", "(default: cpu)"):
        assert printed.count(default) == 1, default
