"""The one loopback rule: which host names and addresses never leave this machine.

Every safety decision that depends on "is this loopback?" — serving a control API or
``/metrics`` without a token, turning environment proxies off for a call, refusing to
listen on a public address, accepting a webhook URL — asks :func:`is_loopback_host`, so a
host that one component treats as private is treated as private by all of them.

Loopback: ``localhost`` and its subdomains (RFC 6761), in any case and with or without a
trailing dot; any address in 127.0.0.0/8; ``::1``; an IPv4-mapped IPv6 address of
127.0.0.0/8 (``::ffff:127.0.0.1``). Brackets around an IPv6 literal are ignored. Anything
else — another name (it may resolve anywhere), the empty string or a wildcard
(``0.0.0.0``, ``::``: every interface) — is not loopback.
"""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """True if ``host`` (a name or an IP literal, optionally bracketed) is loopback."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_wildcard_host(host: str) -> bool:
    """True if ``host`` is a listen address meaning every interface: empty, or an
    unspecified IP literal in any spelling (IPv4 or IPv6, optionally bracketed). A client on
    this machine reaches such a listener through loopback, so its URL names 127.0.0.1."""
    name = host.strip().strip("[]")
    if not name:
        return True
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return False
