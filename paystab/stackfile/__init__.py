"""The stack file: one YAML description of a payment stack that paystab drills.

``paystab init`` writes a commented starter (:mod:`.starter`), ``paystab stack validate``
checks one (:mod:`.load`: every problem at once as ``file:line: field: problem``, exit 2),
``paystab drill RUNBOOK --stack FILE`` drills it (:mod:`paystab.drill.stack_target`), and
``paystab up`` describes the reference stack with one (:mod:`.reference`). The model is
:mod:`.model`; ``${env:…}``/``${simulators.…}`` templates are :mod:`.templates`.
Docs: docs/your-stack.md.
"""

from paystab.stackfile.load import LoadedStack, load_stack, parse_stack
from paystab.stackfile.model import StackFile

__all__ = ["LoadedStack", "StackFile", "load_stack", "parse_stack"]
