"""``paystab schema``: the JSON Schemas of paystab's config files, for editors and CI.

``schema export DIR`` writes one ``KIND.schema.json`` per config file kind
(:data:`paystab.config.schemas.KINDS`: runbook, stack-config, mix, alert-spec, watch,
proxy-config, ensemble, …); ``schema show KIND`` prints one. The same
files ship inside the package (``paystab/schemas/``). Parse, call, render: nothing else.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group("schema")
def schema_group() -> None:
    """JSON Schemas of the config files (runbook, stack-config, mix, proxy-config, …).

    \b
    Example:
      paystab schema export .schemas
      # then, first line of a runbook:
      # yaml-language-server: $schema=.schemas/runbook.schema.json
    """


@schema_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schema_export(directory: Path) -> None:
    """Write every config file's JSON Schema into DIRECTORY (created if missing).

    \b
    Example:
      paystab schema export .schemas
    """
    from paystab.config.schemas import export

    for path in export(directory):
        click.echo(str(path))


@schema_group.command("show")
@click.argument("kind")
def schema_show(kind: str) -> None:
    """Print the JSON Schema of KIND (runbook, stack-config, mix, alert-spec, watch,
    proxy-config, ensemble, …; `schema export` writes them all).

    \b
    Example:
      paystab schema show runbook > runbook.schema.json
    """
    from paystab.config.schemas import schema_text

    click.echo(schema_text(kind), nl=False)


def register(group: click.Group) -> None:
    group.add_command(schema_group)
