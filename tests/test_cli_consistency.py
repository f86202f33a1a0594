"""Every group and every command answers a typo the same way (issue 17, item 1).

Walks the whole click tree, so commands and groups added later are held to it without
being listed here: a mistyped subcommand and a mistyped option both come out as
``paystab: …`` with did-you-mean over what that group or command knows, exit 2, no
click ``Usage:`` block. In-process through :func:`paystab.cli.main` (nothing starts:
click rejects the arguments before any command runs).
"""

from __future__ import annotations

import sys

import click
import pytest
from click.testing import CliRunner

from paystab.cli import cli, main
from paystab.cli.conventions import PaystabGroup, adopt_group


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["paystab", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def walk(command: click.Command = cli, path: tuple[str, ...] = ()
         ) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += walk(sub, (*path, name))
    return found


GROUPS = [(p, c) for p, c in walk() if isinstance(c, click.Group)]
COMMANDS_WITH_OPTIONS = [
    (p, c) for p, c in walk()
    if any(isinstance(o, click.Option) and not o.hidden and o.opts[-1].startswith("--")
           and len(o.opts[-1]) > 4 for o in c.params)]


def _typo(word: str) -> str:
    """A likely slip: the last letter typed twice (``drilll``, ``--seedd``)."""
    return word + word[-1]


def test_every_group_is_a_paystab_group() -> None:
    assert len(GROUPS) >= 6
    assert [" ".join(p) for p, g in GROUPS if not isinstance(g, PaystabGroup)] == []


@pytest.mark.parametrize(("path", "group"), GROUPS, ids=lambda v: " ".join(v) or "paystab"
                         if isinstance(v, tuple) else "")
def test_a_mistyped_subcommand_suggests_the_commands_of_its_group(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        path: tuple[str, ...], group: click.Group) -> None:
    for name in sorted(group.commands):
        typed = _typo(name)
        if typed in group.commands:
            continue
        code, out, err = run_main(monkeypatch, capsys, *path, typed)
        shown = " ".join((*path, typed))
        assert code == 2, err
        assert err.startswith(f"paystab: no command '{shown}' (did you mean "), err
        assert f"'{' '.join((*path, name))}'" in err.splitlines()[0], err
        assert f"hint: see `{' '.join(('paystab', *path))} --help`" in err
        assert "Usage:" not in err and "Error:" not in err and out == ""


@pytest.mark.parametrize(("path", "command"), COMMANDS_WITH_OPTIONS,
                         ids=lambda v: " ".join(v) or "paystab" if isinstance(v, tuple) else "")
def test_a_mistyped_option_suggests_the_options_of_its_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        path: tuple[str, ...], command: click.Command) -> None:
    options = [o for o in command.params if isinstance(o, click.Option) and not o.hidden]
    every = {name for o in options for name in (*o.opts, *o.secondary_opts)}
    tried = 0
    for option in options:
        flag = max(option.opts, key=len)
        if not flag.startswith("--") or len(flag) <= 4 or _typo(flag) in every:
            continue
        code, out, err = run_main(monkeypatch, capsys, *path, _typo(flag))
        assert code == 2, err
        assert err.startswith(f"paystab: {_typo(flag)}: no such option (did you mean "), err
        assert f"'{flag}'" in err.splitlines()[0], err
        assert "Usage:" not in err and out == ""
        tried += 1
    assert tried > 0


def test_a_typo_with_a_value_attached_is_still_recognised(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "drill", "--durtion=30s")
    assert code == 2
    assert err.startswith("paystab: --durtion: no such option (did you mean '--duration'?)")


def test_words_people_use_for_a_command_point_to_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "chaos", "list")
    assert code == 2
    assert "'chaos status'" in err and "'chaos kinds'" in err
    code, _, err = run_main(monkeypatch, capsys, "run")
    assert code == 2 and "'drill'" in err and "'load'" in err


def test_a_bare_group_shows_its_help_without_the_error_prefix(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(monkeypatch, capsys, "chaos")
    assert code == 2 and out == ""
    assert err.startswith("Usage: paystab chaos ") and "inject" in err


def test_a_group_added_later_behaves_the_same_without_opting_in() -> None:
    """A group built with plain ``@click.group()`` (or a class of its own) by another
    module is adopted when it is added, and so are the groups already below it."""

    class OwnGroup(click.Group):
        marker = "kept"

    root = PaystabGroup("paystab")
    area = click.group("area")(lambda: None)
    nested = OwnGroup("nested")
    nested.add_command(click.command("leaf")(lambda: None))
    area.add_command(nested)
    area.add_command(click.command("validate")(lambda: None))
    root.add_command(area)
    assert isinstance(area, PaystabGroup) and isinstance(nested, PaystabGroup)
    assert isinstance(nested, OwnGroup) and nested.marker == "kept"
    later = click.Group("later")
    area.add_command(later)  # added to an adopted group: adopted too
    assert isinstance(later, PaystabGroup)
    adopt_group(click.command("plain")(lambda: None))  # a plain command is left alone

    result = CliRunner().invoke(root, ["area", "valdate"], standalone_mode=False)
    assert isinstance(result.exception, click.UsageError)
    assert result.exception.format_message().startswith(
        "no command 'area valdate' (did you mean 'area validate'")
    result = CliRunner().invoke(root, ["area", "nested", "lef"], standalone_mode=False)
    assert isinstance(result.exception, click.UsageError)
    assert "(did you mean 'area nested leaf'?)" in result.exception.format_message()


def test_a_group_never_adopted_is_still_rewritten_by_main() -> None:
    """The fallback in :func:`usage_error_text`: click's own NoSuchCommand, from a group that
    was never added to a paystab group, reads the same."""
    from paystab.cli.conventions import usage_error_text

    loose = click.Group("loose", commands=[click.Command("export")])
    result = CliRunner().invoke(loose, ["exprt"], standalone_mode=False)
    assert isinstance(result.exception, click.UsageError)
    assert usage_error_text(result.exception).startswith(
        "no command 'exprt' (did you mean 'export'?)\n  hint: see `loose --help`")


def test_hidden_commands_are_not_suggested() -> None:
    root = PaystabGroup("paystab")
    root.add_command(click.Command("export"))
    root.add_command(click.Command("exporter", hidden=True))
    result = CliRunner().invoke(root, ["exportr"], standalone_mode=False)
    assert isinstance(result.exception, click.UsageError)
    assert result.exception.format_message() == "no command 'exportr' (did you mean 'export'?)"
