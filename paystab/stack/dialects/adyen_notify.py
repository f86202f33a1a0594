"""Adyen standard notifications (webhooks), signed as Adyen signs them.

A notification is ``{"live": "false", "notificationItems": [{"NotificationRequestItem":
item}]}``; each item carries ``additionalData.hmacSignature``: base64 of HMAC-SHA256, keyed
with the hex-decoded HMAC key of the webhook, over ``pspReference : originalReference :
merchantAccountCode : merchantReference : value : currency : eventCode : success`` (empty
for a missing field) — what ``Adyen.util.is_valid_hmac_notification`` recomputes. The
merchant answers ``[accepted]``.

Events the simulator sends: ``AUTHORISATION`` (success true/false; for konbini and bank
transfer when the shopper pays, or ``OFFER_CLOSED`` when the slip is cancelled),
``CAPTURE``, ``CANCELLATION``, ``REFUND`` and ``CANCEL_OR_REFUND`` (for a reversal), whose
``originalReference`` is the payment's pspReference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any

_SIGNED = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference",
           "value", "currency", "eventCode", "success")
# A 32-byte hex key, what the Customer Area generates; the default when the stack sets none.
TEST_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"


def sign_item(item: dict[str, Any], hmac_key_hex: str) -> str:
    fields = dict(item, value=item["amount"]["value"], currency=item["amount"]["currency"])
    payload = ":".join(str(fields.get(name, "")) for name in _SIGNED)
    digest = hmac.new(binascii.a2b_hex(hmac_key_hex), payload.encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def notification(event_code: str, *, psp: str, merchant: str, reference: str, value: int,
                 currency: str, success: bool, hmac_key_hex: str,
                 original: str | None = None, reason: str = "",
                 payment_method: str = "") -> dict[str, Any]:
    """One signed notification with a single item."""
    item: dict[str, Any] = {
        "amount": {"value": value, "currency": currency},
        "eventCode": event_code,
        "eventDate": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "merchantAccountCode": merchant,
        "merchantReference": reference,
        "pspReference": psp,
        "reason": reason,
        "success": "true" if success else "false",
    }
    if original is not None:
        item["originalReference"] = original
    if payment_method:
        item["paymentMethod"] = payment_method
    item["additionalData"] = {"hmacSignature": sign_item(item, hmac_key_hex)}
    return {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
