"""paystab's locustfile: checkout users at an open-model arrival rate. Works with stock Locust.

    locust -f paystab/loadtest/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --paystab-profile spike --paystab-rps 50 --paystab-duration 120 \\
        --paystab-threshold 'p(99)<500' --paystab-json out.json

Distributed over several machines (the same file everywhere; options go to the master)::

    locust -f paystab/loadtest/locustfile.py --master --headless --expect-workers 4 \\
        --host http://gateway:8080 --paystab-rps 2000 --paystab-duration 600
    locust -f paystab/loadtest/locustfile.py --worker --master-host MASTER   # on each box

``paystab load`` runs these same classes (in-process, or as the master of ``--processes N``
local workers started with this file). The paystab package must be importable; when it is
not installed, this file puts the checkout it lives in on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("paystab") is None:  # running from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from locust import events

from paystab.loadtest import standalone
from paystab.loadtest.standalone import PaystabShape
from paystab.loadtest.user import CheckoutUser

__all__ = ["CheckoutUser", "PaystabShape"]

standalone.install(events)
