"""``paystab stack validate FILE`` and ``paystab init [PATH]``: the stack file's commands.

``validate`` checks a stack file (or a paystab ready file, read as one) and prints what it
describes in a few lines; any problem is exit 2 with every problem listed as
``FILE:LINE: field: problem``. ``init`` writes a commented starter that validates as
written, and never overwrites a file without ``--force``. Parse, call, render.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group("stack")
def stack_group() -> None:
    """Stack files: describe your payment stack once, drill it with --stack.

    \b
    Example:
      paystab init stack.yaml
      paystab stack validate stack.yaml
      paystab drill provider-timeout --stack stack.yaml
    """


@stack_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def validate_command(file: Path) -> None:
    """Check FILE (every problem at once; exit 2) and summarise what it describes.

    \b
    Example:
      paystab stack validate stack.yaml
    """
    from paystab.stackfile import load_stack
    from paystab.stackfile.summary import summary_lines

    loaded = load_stack(file)
    for line in summary_lines(loaded):
        click.echo(line)


@click.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=Path("stack.yaml"))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init_command(path: Path, force: bool) -> None:
    """Write a commented starter stack file to PATH (default: stack.yaml).

    \b
    Example:
      paystab init
      paystab stack validate stack.yaml
    """
    from paystab.stackfile.starter import write_starter

    written = write_starter(path, force)
    click.echo(f"wrote {written}: edit the lines marked CHANGE, then "
               f"`paystab stack validate {written}`")


def register(group: click.Group) -> None:
    group.add_command(stack_group)
    group.add_command(init_command)
