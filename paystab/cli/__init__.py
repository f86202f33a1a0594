"""The ``paystab`` command line: parse, call, render. No logic of its own.

Each area keeps its commands in its own module here (``stack_cmds``, ``chaos_cmds``, …)
with a ``register(group)`` function. Modules import only click at import time: heavy
dependencies (Locust monkey-patches the process with gevent on import) are imported inside
the command that needs them. Every :class:`PaystabError` is caught in :func:`main` and
turned into a message and its exit code; click's usage errors are rewritten into the same
``paystab: SOURCE: problem`` style (exit 2). The shared conventions (``--json [FILE|-]``,
did-you-mean, examples in ``--help``) live in :mod:`paystab.cli.conventions`.
"""

from __future__ import annotations

import importlib
import sys

import click

from paystab import __version__
from paystab.cli.conventions import PaystabGroup, add_examples, usage_error_text
from paystab.exceptions import ExitCode, PaystabError

_COMMAND_MODULES = (
    "stack_cmds",
    "chaos_cmds",
    "detect_cmds",
    "load_cmds",
    "drill_cmds",
    "export_cmds",
    "report_cmds",
    "watch_cmds",
    "schema_cmds",
    "stackfile_cmds",
)


@click.group(cls=PaystabGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paystab")
def cli() -> None:
    """Observability and chaos engineering for payment stacks."""


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"paystab.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"paystab.cli.{name}":
                continue  # that area is not built yet
            raise
        module.register(cli)


_register_all()
add_examples(cli)


def main() -> None:
    try:
        result = cli.main(standalone_mode=False, prog_name="paystab")
    except PaystabError as exc:
        click.echo(f"paystab: {exc.render()}", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        click.echo("paystab: interrupted", err=True)
        sys.exit(int(ExitCode.ABORTED))
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as click
        click.echo(exc.format_message(), err=True)
        sys.exit(int(ExitCode.INVALID_INPUT))
    except click.UsageError as exc:  # one error style: click's usage errors read like ours
        click.echo(f"paystab: {usage_error_text(exc)}", err=True)
        sys.exit(int(ExitCode.INVALID_INPUT))
    except click.ClickException as exc:
        click.echo(f"paystab: {exc.format_message()}", err=True)
        sys.exit(int(ExitCode.INVALID_INPUT))
    except KeyboardInterrupt:
        click.echo("paystab: interrupted", err=True)
        sys.exit(int(ExitCode.ABORTED))
    sys.exit(int(result) if isinstance(result, int) else 0)
