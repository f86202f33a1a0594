"""The conventions every ``paystab`` command follows, in one place (docs/cli.md).

- ``--json [FILE|-]``: ``--json`` or ``--json -`` prints JSON on stdout, ``--json FILE``
  writes it to FILE (its folder created first). :func:`json_option` and :func:`emit_json`.
- Output paths are checked before any work (:mod:`paystab.outputs`), exit 2 naming the flag.
- One error style, ``paystab: SOURCE[:LINE]: FIELD: problem (expected …)``: click's usage
  errors are rewritten into it by :func:`usage_error_text` (exit 2).
- Did-you-mean for every name, commands included (:class:`PaystabGroup`).
- An example at the end of every ``--help`` (:data:`EXAMPLES`, applied by
  :func:`add_examples`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from paystab.exceptions import InvalidInput
from paystab.outputs import check_output_file
from paystab.suggest import close_names

STDOUT = "-"
F = TypeVar("F", bound=Callable[..., Any])


def json_option(help_text: str = "JSON on stdout (--json or --json -) or into FILE "
                                 "(--json FILE).", dest: str = "json_dest"
                ) -> Callable[[F], F]:
    """``--json [FILE|-]``: a flag whose value is optional (``-`` when it is left out)."""
    return click.option("--json", dest, is_flag=False, flag_value=STDOUT, default=None,
                        metavar="[FILE|-]", help=help_text)


def check_json_dest(dest: str | None) -> None:
    """Check a ``--json FILE`` before any work (exit 2); stdout needs no check."""
    if dest not in (None, STDOUT):
        check_output_file(Path(dest), "--json")


def emit_json(data: Any, dest: str) -> None:
    """Write ``data`` as indented JSON to stdout (``-``) or to the file ``dest``."""
    text = json.dumps(data, indent=2) + "\n"
    if dest == STDOUT:
        click.echo(text, nl=False)
        return
    check_output_file(Path(dest), "--json")
    Path(dest).write_text(text)


def positive_rate(value: str | None, flag: str, example: str = "200 or 200/s") -> float | None:
    """A rate flag (``200``, ``200/s``, ``6000/m``) that must be > 0; exit 2 saying so."""
    from paystab.units import parse_rate

    if value is None:
        return None
    try:
        rate = parse_rate(value.strip())
    except ValueError:
        negative = value.strip().startswith("-")
        if negative:
            try:
                parse_rate(value.strip()[1:])
            except ValueError:
                negative = False
        problem = (f"{value!r} is negative: a rate must be positive" if negative
                   else f"cannot read {value!r} as a rate")
        raise InvalidInput(problem, source=flag,
                           expected=f"payments per second > 0, e.g. {example}") from None
    if not rate > 0 or math.isinf(rate):
        raise InvalidInput(f"{value!r} is not positive: a rate must be positive", source=flag,
                           expected=f"payments per second > 0, e.g. {example}")
    return rate


# -- errors ------------------------------------------------------------------------------
def usage_error_text(exc: click.UsageError) -> str:
    """A click usage error in paystab's style: ``SOURCE: problem`` + a hint line.

    Unknown options get did-you-mean over the options of the command they were given to;
    unknown commands over the commands of their group (:class:`PaystabGroup` says so, and
    a group that is not one, e.g. built elsewhere, is caught here too).
    """
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else "paystab"
    message = exc.format_message()
    source = None
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        opts = getattr(exc.param, "opts", None) or [exc.param.name or ""]
        source = max(opts, key=len) if exc.param.param_type_name == "option" else (
            exc.param.human_readable_name)
        message = exc.message
    elif isinstance(exc, click.NoSuchOption):
        source = exc.option_name
        message = "no such option" + _did_you_mean(
            _close_options(exc.option_name, ctx.command if ctx is not None else None)
            or sorted(exc.possibilities or ()))
    elif isinstance(exc, click.exceptions.NoSuchCommand) and ctx is not None:
        message = _no_command_message(ctx, click.utils.make_str(exc.command_name))
    if isinstance(exc, click.MissingParameter) and exc.param is not None:
        message = f"missing {exc.param.param_type_name}"
    text = f"{source}: {message}" if source else message
    text = text.rstrip(".")
    return f"{text}\n  hint: see `{path} --help`"


def _did_you_mean(names: list[str]) -> str:
    return (" (did you mean " + " or ".join(f"'{n}'" for n in names[:3]) + "?)") if names else ""


def _close_options(typed: str, command: click.Command | None) -> list[str]:
    """The options of ``command`` closest to ``typed`` (hidden ones left out)."""
    if command is None:
        return []
    known: list[str] = ["--help"]
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            known += [*param.opts, *param.secondary_opts]
    name = typed.split("=", 1)[0]
    # compared without the dashes, which every option shares and would make all look close
    bare = {k.lstrip("-"): k for k in known if k.startswith("--") == name.startswith("--")}
    return [bare[b] for b in close_names(name.lstrip("-"), bare, n=2, cutoff=0.6)]


# -- commands ----------------------------------------------------------------------------
# What people type for a command paystab spells differently; difflib covers the typos.
# Keyed by the group's path below ``paystab`` ("" is the top level).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "": {"run": ("drill", "load"), "test": ("drill", "load"), "start": ("up",),
         "stack": ("up",), "serve": ("up", "gateway"), "inject": ("chaos",), "fault": ("chaos",),
         "faults": ("chaos",), "status": ("chaos",), "clear": ("chaos",), "bench": ("load",),
         "capacity": ("load",), "html": ("report",), "alerts": ("rules", "watch"),
         "grafana": ("dashboards",), "anomaly": ("detect",), "psp": ("provider",),
         "schemas": ("schema",), "validate": ("runbook", "watch", "stack")},
    "chaos": {"list": ("status", "kinds"), "ls": ("status", "kinds"), "add": ("inject",),
              "start": ("inject",), "remove": ("clear",), "rm": ("clear",),
              "stop": ("clear",), "reset": ("clear",)},
    "runbook": {"ls": ("list",), "check": ("validate",), "lint": ("validate",),
                "cat": ("show",), "describe": ("show",)},
    "watch": {"check": ("validate",), "lint": ("validate",)},
    "load": {"search": ("capacity",), "max": ("capacity",)},
    "schema": {"write": ("export",), "print": ("show",), "cat": ("show",)},
    "rules": {"write": ("export",)}, "dashboards": {"write": ("export",)},
}


def _no_command_message(ctx: click.Context, name: str) -> str:
    """``no command 'chaos injct' (did you mean 'chaos inject'?)``: names as typed in full."""
    group = ctx.command
    known = [name for name in group.list_commands(ctx)  # hidden ones are not offered
             if not getattr(group.get_command(ctx, name), "hidden", False)] \
        if isinstance(group, click.Group) else []
    below = " ".join(ctx.command_path.split()[1:])  # the group's path under ``paystab``
    meant = [c for c in SYNONYMS.get(below, {}).get(name.lower(), ()) if c in known]
    meant += [c for c in close_names(name, known, n=2, cutoff=0.5) if c not in meant]
    prefix = f"{below} " if below else ""
    return f"no command '{prefix}{name}'" + _did_you_mean([prefix + m for m in meant])


class PaystabGroup(click.Group):
    """Every ``paystab`` group: an unknown subcommand is answered in paystab's one error
    style with did-you-mean over this group's commands (exit 2 from :func:`main`).

    A group added to a PaystabGroup becomes one (:meth:`add_command`), and ``@group.group()``
    makes one, so a command area added later behaves the same without opting in.
    """

    group_class = type  # ``@paystab_group.group()`` makes another PaystabGroup

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        adopt_group(cmd)
        super().add_command(cmd, name)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if (name and not name.startswith("-") and not ctx.resilient_parsing
                and self.get_command(ctx, name) is None):
            raise click.UsageError(_no_command_message(ctx, name), ctx)
        return super().resolve_command(ctx, args)


def adopt_group(cmd: click.Command) -> None:
    """Make ``cmd`` (and every group below it) a :class:`PaystabGroup` if it is a group.

    The groups keep their state; only their class changes, to PaystabGroup or to a subclass
    of both when the group already had a class of its own.
    """
    if not isinstance(cmd, click.Group):
        return
    if not isinstance(cmd, PaystabGroup):
        own = type(cmd)
        cmd.__class__ = PaystabGroup if own is click.Group else _paystab_variant(own)
    for sub in cmd.commands.values():
        adopt_group(sub)


_VARIANTS: dict[type[click.Group], type[PaystabGroup]] = {}


def _paystab_variant(own: type[click.Group]) -> type[PaystabGroup]:
    if own not in _VARIANTS:
        _VARIANTS[own] = type(f"Paystab{own.__name__}", (PaystabGroup, own), {})
    return _VARIANTS[own]


EXAMPLES: dict[str, tuple[str, ...]] = {
    "paystab": ("paystab drill provider-timeout --duration 30s",
                "paystab up --ready-file stack.json",),
    "paystab up": ("paystab up --port 0 --ready-file stack.json --seed 7",),
    "paystab gateway": ("paystab gateway --providers-file providers.json --port 0 "
                        "--ledger /tmp/gw.db",),
    "paystab reconcile": ("paystab reconcile --ready-file stack.json --json -",),
    "paystab provider": ("paystab provider all --port 0",),
    "paystab chaos": ("paystab chaos inject provider.hang --target card-alpha --duration 30s",),
    "paystab chaos inject": ("paystab chaos inject provider.hang --target card-alpha "
                             "--duration 30s",),
    "paystab chaos status": ("paystab chaos status --json -",),
    "paystab chaos clear": ("paystab chaos clear --all",),
    "paystab chaos kinds": ("paystab chaos kinds --json kinds.json",),
    "paystab chaos proxy": ("paystab chaos proxy --help",),
    "paystab runbook": ("paystab runbook list",),
    "paystab runbook list": ("paystab runbook list --json -",),
    "paystab runbook show": ("paystab runbook show provider-timeout",),
    "paystab runbook validate": ("paystab runbook validate my-drill.yaml",),
    "paystab detect": ("paystab detect --input counts.csv --json anomalies.json",),
    "paystab load": ("paystab load --ready-file stack.json --rps 200 --duration 2m "
                     "--threshold 'p(99)<500' --json result.json",),
    "paystab load worker": ("paystab load worker --master-host 10.0.0.5 --flow checkout.yaml "
                            "--token \"$PAYSTAB_TOKEN\"",),
    "paystab load capacity": ("paystab load capacity --ready-file stack.json --max-rps 1000 "
                              "--json capacity.json",),
    "paystab drill": ("paystab drill provider-timeout --duration 30s --out out/ "
                      "--junit out/junit.xml",
                      "paystab drill --target http://127.0.0.1:8080 --ready-file stack.json",),
    "paystab rules": ("paystab rules export --help",),
    "paystab rules export": ("paystab rules export --help",),
    "paystab dashboards": ("paystab dashboards export --help",),
    "paystab dashboards export": ("paystab dashboards export --help",),
    "paystab report": ("paystab report out/report.json --html out/report.html --check",),
    "paystab watch": ("paystab watch validate watch.yaml",),
    "paystab watch validate": ("paystab watch validate watch.yaml",),
    "paystab watch schema": ("paystab watch schema > watch.schema.json",),
    "paystab watch receiver": ("paystab watch receiver --help",),
}


def add_examples(command: click.Command, path: str = "paystab") -> None:
    """Give ``command`` and its subcommands an ``Examples:`` epilog (kept if it has one)."""
    if not command.epilog and path in EXAMPLES:
        # \b keeps click from re-wrapping the example lines.
        command.epilog = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[path])
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_examples(sub, f"{path} {name}")


def plain_output() -> bool:
    """True when stdout is not a terminal: line-oriented text, no tables or colour."""
    return not sys.stdout.isatty()
