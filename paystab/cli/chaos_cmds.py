"""``paystab chaos …`` (inject, status, clear, kinds, proxy) and ``paystab runbook …``.

Parse, call into :mod:`paystab.chaos`, render. ``chaos inject`` holds one fault in a
:class:`~paystab.chaos.session.FaultSession` for its duration (Ctrl-C or SIGTERM clears
it); ``status`` and ``clear`` read the fault journal, so they also see and undo faults of
processes that died. ``chaos proxy`` (the Toxiproxy-compatible server) lives in
``proxy_cmd`` and is attached when present.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import click

from paystab.cli.conventions import emit_json, json_option
from paystab.exceptions import Aborted, EnvironmentProblem, InvalidInput

if TYPE_CHECKING:
    from paystab.chaos.journal import Journal


def register(group: click.Group) -> None:
    group.add_command(chaos)
    group.add_command(runbook)
    try:
        from paystab.cli.proxy_cmd import proxy_command
    except ModuleNotFoundError as exc:
        if exc.name != "paystab.cli.proxy_cmd":
            raise
        return  # the proxy server is not built yet
    chaos.add_command(proxy_command, "proxy")


@click.group()
def chaos() -> None:
    """Inject faults by hand, list them, clear them (also after a crash)."""


def _ready_context(ready_file: str | None, proxy_api: str | None) -> Any:
    from paystab.chaos.base import FaultContext
    from paystab.stack.endpoints import StackEndpoints

    ready_file = ready_file or os.environ.get("PAYSTAB_READY_FILE")
    ctx = FaultContext.from_stack(StackEndpoints.read(ready_file)) if ready_file \
        else FaultContext()
    if proxy_api:
        ctx.proxy_api_url = proxy_api.rstrip("/")
    return ctx


@chaos.command("inject")
@click.argument("kind")
@click.option("--target", "-t", required=True, help="what to break (see `paystab chaos kinds`)")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="a fault parameter, with its unit (latency=300ms); repeatable")
@click.option("--duration", "-d", metavar="DURATION",
              help="how long to hold the fault (30, 30s, 2m); default: until Ctrl-C")
@click.option("--allow", "allow", multiple=True, metavar="THING",
              help="blast radius: HOST:PORT, provider:NAME, container:NAME, pid:N …; "
                   "default $PAYSTAB_ALLOW, else just the target")
@click.option("--ready-file", type=click.Path(dir_okay=False),
              help="a stack's ready file, to find providers and processes by name "
                   "(default $PAYSTAB_READY_FILE)")
@click.option("--proxy-api", metavar="URL", help="Toxiproxy API (default $TOXIPROXY_URL or "
              "http://127.0.0.1:8474)")
@click.option("--name", help="a name for the fault (shown in status)")
def inject(kind: str, target: str, params: tuple[str, ...], duration: str | None,
           allow: tuple[str, ...], ready_file: str | None, proxy_api: str | None,
           name: str | None) -> None:
    """Inject one fault KIND, hold it for --duration, then clear it."""
    from paystab.chaos.allow import AllowList
    from paystab.chaos.base import invalid_target
    from paystab.chaos.params import parse_cli_params
    from paystab.chaos.registry import build_spec, fault_class
    from paystab.chaos.session import FaultSession
    from paystab.units import DURATION_EXPECTED, format_duration, parse_cli_duration_s

    spec = build_spec(
        name or kind, kind, target, parse_cli_params(params),
        kind_error=lambda p, e: InvalidInput(p, source="KIND", expected=e),
        target_error=lambda exc: invalid_target(exc, "--target", None, target),
        param_error=lambda n, p, e: InvalidInput(p, source="--param", field=n, expected=e),
    )
    hold_s = None
    if duration is not None:
        try:
            hold_s = parse_cli_duration_s(duration)
        except ValueError as exc:
            raise InvalidInput(str(exc), source="--duration", expected=DURATION_EXPECTED) from None
    entries = list(allow) or [a for a in os.environ.get("PAYSTAB_ALLOW", "").split(",") if a]
    allow_list = AllowList.parse(entries) if entries else \
        AllowList((fault_class(kind).check_target(target),))
    ctx = _ready_context(ready_file, proxy_api)
    try:
        with FaultSession(allow=allow_list, context=ctx) as session:
            fault = session.prepare([spec])[0]
            session.inject(fault)
            until = f"for {format_duration(hold_s)}" if hold_s is not None else "until Ctrl-C"
            click.echo(f"injected {fault.describe()} [{fault.uid}] {until}", err=True)
            started = time.monotonic()
            while hold_s is None or time.monotonic() - started < hold_s:
                time.sleep(0.5 if hold_s is None else
                           max(0.0, min(0.5, hold_s - (time.monotonic() - started))))
            session.clear(fault)
            click.echo(f"cleared {fault.uid} after {time.monotonic() - started:.1f}s", err=True)
    except Aborted as exc:
        if hold_s is not None:
            raise
        click.echo(f"cleared ({exc.message})", err=True)  # no duration: Ctrl-C is the end


@chaos.command("status")
@json_option()
def status(json_dest: str | None) -> None:
    """List active faults (from the journal), with their owner process."""
    from paystab.chaos.journal import Journal

    journal = Journal()
    entries = journal.entries()
    if json_dest:
        rows = [dict(e.record, uid=e.uid, owner_alive=e.owner_alive, error=e.error)
                for e in entries]
        emit_json({"state_dir": str(journal.root), "faults": rows}, json_dest)
        return
    if not entries:
        click.echo(f"no active faults (journal: {journal.dir})")
        return
    now = time.time()
    for e in entries:
        owner = f"pid {e.owner_pid} " + ("alive" if e.owner_alive else "GONE (orphan)")
        age = now - float(e.record.get("created_at") or now)
        text = e.error or e.record.get("description") or e.record.get("kind")
        click.echo(f"{e.uid:<40} {e.state:<9} {age:7.1f}s  {owner:<24} {text}")


@chaos.command("clear")
@click.argument("uids", nargs=-1)
@click.option("--all", "clear_all", is_flag=True,
              help="clear every recorded fault, also those of live processes")
def clear(uids: tuple[str, ...], clear_all: bool) -> None:
    """Undo recorded faults: the given UIDS, else orphans (owner gone), or --all."""
    from paystab.chaos.cleanup import clear_recorded
    from paystab.chaos.journal import Journal

    if uids and clear_all:
        raise InvalidInput("give fault uids or --all, not both", source="--all")
    journal = Journal()
    _check_known(journal, uids)
    result = clear_recorded(journal, uids, include_live=clear_all)
    for entry in result.cleared:
        click.echo(f"cleared {entry.uid}: {entry.record.get('description', '')}")
    if result.skipped:
        click.echo(f"left {len(result.skipped)} fault(s) held by live processes "
                   "(they clear them; --all to force)", err=True)
    if not result.cleared and not result.failed:
        click.echo("nothing to clear")
    if result.failed:
        raise EnvironmentProblem(
            f"{len(result.failed)} fault(s) not cleared: "
            + "; ".join(f"{e.uid}: {why}" for e, why in result.failed),
            hint="fix the cause (daemon down? not root?) and run `paystab chaos clear` again")


def _check_known(journal: Journal, uids: tuple[str, ...]) -> None:
    """An id the journal does not hold is a typo, not a broken daemon: exit 2, nothing
    cleared, naming the id and the closest recorded ones."""
    import difflib

    if not uids:
        return
    known = sorted(entry.uid for entry in journal.entries())
    unknown = [uid for uid in uids if uid not in known]
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], known, n=3, cutoff=0.5)
    hint = (f"did you mean {' or '.join(close)}?" if close else
            "`paystab chaos status` lists the recorded faults"
            + ("" if known else " (there are none)"))
    raise InvalidInput(f"no recorded fault {', '.join(repr(u) for u in unknown)}",
                       source="fault id", expected="a uid from `paystab chaos status`"
                       + (f": {', '.join(known[:10])}" if known else ""), hint=hint)


@chaos.command("kinds")
@json_option()
def kinds_command(json_dest: str | None) -> None:
    """List fault kinds, their targets and parameters."""
    from paystab.chaos.registry import kinds

    table = kinds()
    if json_dest:
        emit_json({
            name: {"summary": cls.summary,
                   "params": [{"name": p.name, "type": p.type, "help": p.help,
                               "required": p.required, "expected": p.expected(),
                               "default": None if p.required else p.default}
                              for p in cls.params_spec]}
            for name, cls in table.items()}, json_dest)
        return
    for name, cls in table.items():
        click.echo(f"{name:<24} {cls.summary}")
        for p in cls.params_spec:
            default = "required" if p.required else f"default {p.format(p.default)}" \
                if p.default is not None else "optional"
            click.echo(f"    {p.name:<16} {p.help} ({p.expected()}; {default})")


# -- runbooks --------------------------------------------------------------------------------
@click.group()
def runbook() -> None:
    """List, show and validate runbooks (YAML drills)."""


@runbook.command("list")
@json_option()
def runbook_list(json_dest: str | None) -> None:
    """The bundled runbooks."""
    from paystab.chaos.bundled import DEFAULT_RUNBOOK, bundled_runbooks
    from paystab.chaos.runbook import load_runbook

    rows: list[dict[str, Any]] = []
    for name, path in bundled_runbooks().items():
        try:
            book = load_runbook(path)
            kinds = sorted({s.spec.kind for s in book.faults}) or ["(no fault)"]
            first = " ".join(book.description.split()).split(". ")[0].rstrip(".")
            rows.append({"name": name, "path": str(path), "faults": kinds,
                         "description": first, "valid": True})
        except InvalidInput as exc:
            rows.append({"name": name, "path": str(path), "faults": [],
                         "description": f"INVALID: {exc.message}", "valid": False})
    if json_dest:
        emit_json(rows, json_dest)
        return
    for row in rows:
        mark = " (default)" if row["name"] == DEFAULT_RUNBOOK else ""
        click.echo(f"{row['name'] + mark:<38} {', '.join(row['faults']):<40} "
                   f"{row['description']}")


@runbook.command("show")
@click.argument("name")
@click.option("--raw", is_flag=True, help="print the YAML as written")
def runbook_show(name: str, raw: bool) -> None:
    """Show a runbook (bundled NAME or a file): schedule, hypotheses, blast radius."""
    from paystab.chaos.bundled import find_runbook
    from paystab.chaos.runbook import load_runbook
    from paystab.units import format_duration as fmt

    path = find_runbook(name)
    if raw:
        click.echo(path.read_text(), nl=False)
        return
    book = load_runbook(path)
    load = book.load
    target = "reference stack" if book.target.reference else \
        (book.target.gateway_url or book.target.ready_file or "your stack")
    click.echo(f"{book.name}  ({path})\n\n{book.description}\n")
    click.echo(f"target:     {target}")
    shape = ", ".join(f"{k}={v:g}" for k, v in load.params.items())
    click.echo(f"load:       {load.profile}, {load.rate_per_s:g}/s for {fmt(load.duration_s)}"
               + (f" ({shape})" if shape else ""))
    if load.checkout is not None:
        click.echo(f"checkout:   {load.checkout.describe()}")
    click.echo(f"seed:       {book.seed}")
    click.echo("faults:" + ("" if book.faults else "     none"))
    for step in book.faults:
        until = fmt(step.clear_at_s(load.duration_s))
        params = ", ".join(f"{k}={v}" for k, v in step.spec.params.items())
        click.echo(f"  {fmt(step.at_s):>6} → {until:<6} {step.spec.kind} on {step.spec.target}"
                   + (f" ({params})" if params else "") + f"  [{step.name}]")
    for cond in book.abort_when:
        click.echo(f"abort when: {cond.metric} {cond.op} {cond.threshold:g} over "
                   f"{fmt(cond.window_s)}")
    click.echo("hypotheses:" + ("" if book.hypotheses else " none"))
    for hyp in book.hypotheses:
        click.echo(f"  {hyp.expr}")
    click.echo(f"allow:      {', '.join(book.allow.entries) or '(nothing)'}")


@runbook.command("validate")
@click.argument("files", nargs=-1, required=True)
def runbook_validate(files: tuple[str, ...]) -> None:
    """Check runbook files (or bundled names); exit 2 if any is invalid."""
    from paystab.chaos.bundled import find_runbook
    from paystab.chaos.runbook import load_runbook

    bad = 0
    for item in files:
        try:
            book = load_runbook(find_runbook(item))
        except InvalidInput as exc:
            bad += 1
            click.echo(f"invalid {exc.message}", err=True)
            continue
        click.echo(f"ok      {item}: {book.name} ({len(book.faults)} fault(s), "
                   f"{len(book.hypotheses)} hypothesis(es))")
    if bad:
        raise InvalidInput(f"{bad} of {len(files)} runbook(s) invalid", source="validate")
