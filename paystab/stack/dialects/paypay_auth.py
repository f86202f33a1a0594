"""PayPay OPA's ``hmac OPA-Auth`` request signature: made by the client, verified by the
simulator, exactly as the ``paypayopa`` SDK computes it.

Header: ``Authorization: hmac OPA-Auth:{apiKey}:{macData}:{nonce}:{epoch}:{hash}`` where
``hash`` is base64(MD5(content-type + body)) — or the word ``empty`` for a request without
a body (then the content type signed is ``empty`` too) — and ``macData`` is base64 of
HMAC-SHA256, keyed with the API secret, over ``path \\n method \\n nonce \\n epoch \\n
content-type \\n hash`` (``path`` without the query string). The simulator also requires
the epoch within :data:`MAX_SKEW_S` of its clock and the hash to match the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from urllib.parse import unquote

PREFIX = "hmac OPA-Auth:"
MAX_SKEW_S = 120
# What the reference gateway signs with, and what a simulator with no configured secret
# verifies against (PayPay has no unauthenticated mode).
TEST_API_KEY = "a_paystab_test_key"
TEST_API_SECRET = "paystab-test-secret-for-paypay-hmac"


def body_hash(content_type: str, body: bytes) -> str:
    digest = hashlib.md5(content_type.encode() + body)
    return base64.b64encode(digest.digest()).decode()


def mac(secret: str, path: str, method: str, nonce: str, epoch: str, content_type: str,
        hashed: str) -> str:
    text = "\n".join((path, method, nonce, epoch, content_type, hashed))
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def authorization(method: str, path: str, content_type: str, body: bytes,
                  api_key: str = TEST_API_KEY, secret: str = TEST_API_SECRET,
                  now: float | None = None) -> str:
    """The ``Authorization`` header value for one request (client side)."""
    nonce = uuid.uuid4().hex[:8]
    epoch = str(int(time.time() if now is None else now))
    if body:
        hashed = body_hash(content_type, body)
    else:
        content_type, hashed = "empty", "empty"
    signature = mac(secret, path.partition("?")[0], method, nonce, epoch, content_type, hashed)
    return f"{PREFIX}{api_key}:{signature}:{nonce}:{epoch}:{hashed}"


def verify(header: str, method: str, path: str, content_type: str, body: bytes,
           secret: str, now: float | None = None) -> str | None:
    """None when ``header`` signs this request with ``secret``; else why not."""
    if not header.startswith(PREFIX):
        return "Authorization must be hmac OPA-Auth"
    parts = header[len(PREFIX):].split(":")
    if len(parts) != 5 or not all(parts[:4]):
        return "malformed OPA-Auth header"
    _key, given, nonce, epoch, hashed = parts
    if not epoch.isdigit() or abs((time.time() if now is None else now) - int(epoch)) > \
            MAX_SKEW_S:
        return "epoch outside the allowed window"
    # The SDK signs a body-less request (GET, DELETE) as "empty", whatever it sends.
    if body and body.strip():
        signed_type = content_type
        if not hmac.compare_digest(hashed, body_hash(content_type, body)):
            return "body hash does not match the body"
    else:
        signed_type = "empty"
        if hashed != "empty":
            return "body hash must be 'empty' for a request without a body"
    # The SDK signs the path as the merchant wrote it; the HTTP client may percent-encode
    # it on the wire (a merchantPaymentId with a space): either form is the signed one.
    raw = path.partition("?")[0]
    for candidate in dict.fromkeys((raw, unquote(raw))):
        expected = mac(secret, candidate, method, nonce, epoch, signed_type, hashed)
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
    return "signature does not match"
