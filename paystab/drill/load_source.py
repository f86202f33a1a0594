"""What a drill's load sends: the runbook's checkout, the stack file's, or paystab's payment.

A runbook may name its own checkout (``load.flow``, ``load.flow_file``, ``load.locustfile``:
:class:`~paystab.chaos.runbook.LoadCheckout`); a stack file (``paystab drill --stack``) has
``checkout:``. Precedence, most specific first:

1. the runbook's key — it was written for this drill; when a stack file is given too, the
   report says which of the two was set aside (a note), so nobody wonders why the stack
   file's flow did not run;
2. the stack file's ``checkout`` (:meth:`~paystab.drill.stack_target.StackTarget.load_plan`);
3. paystab's own payment (``POST /v1/payments``), the plan the runner builds as usual.

Either way the load is the runbook's profile, rate, duration, users and seed, sent to the
target's gateway URL (a stack file's ``checkout.base_url``). Called before the target
starts, so a locustfile that does not import is exit 2 with nothing started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paystab.exceptions import InvalidInput

if TYPE_CHECKING:
    from paystab.chaos.runbook import Runbook
    from paystab.drill.stack_target import StackTarget
    from paystab.loadtest.plan import LoadPlan


@dataclass(frozen=True)
class DrillLoad:
    """``plan`` None: the runner builds paystab's payment plan from the runbook;
    ``user_classes``: a user's locustfile, made paced; ``note``: for the report."""

    plan: LoadPlan | None = None
    user_classes: list[type[Any]] | None = None
    note: str | None = None


def drill_load(runbook: Runbook, stack_target: StackTarget | None) -> DrillLoad:
    checkout = runbook.load.checkout
    if checkout is None:
        if stack_target is None:
            return DrillLoad()
        plan, user_classes = stack_target.load_plan(runbook)
        return DrillLoad(plan, user_classes)
    note = f"load: the runbook's {checkout.describe()} is sent"
    if stack_target is not None:
        stack_kind = stack_target.spec.checkout.kind
        set_aside = ("its payment API" if stack_kind == "paystab"
                     else f"its checkout.{stack_kind}")
        note += (f" to the stack file's checkout.base_url instead of {set_aside} "
                 "(a runbook's own checkout is more specific than the stack file's)")
    if checkout.locustfile is not None:
        from paystab.loadtest.userfile import load_user_classes, paced

        try:
            classes = [paced(c) for c in load_user_classes(checkout.locustfile)]
        except InvalidInput as exc:  # said at the runbook's line, where the file is named
            if exc.line is not None:
                raise
            raise InvalidInput(exc.problem, source=runbook.source, line=checkout.line,
                               field="load.locustfile", expected=exc.expected) from None
        return DrillLoad(None, classes, note)
    from paystab.loadtest.plan import build_plan

    load = runbook.load
    plan = build_plan(load.profile, load.rate_per_s, load.duration_s, users=load.users,
                      seed=runbook.seed, params=dict(load.params),
                      flow=dict(checkout.flow or {}))
    return DrillLoad(plan, None, note)
