"""Addresses as the blast radius sees them: the IP and port a fault actually contacts.

A target can name one listener many ways — ``localhost``, ``127.0.0.1``, ``[::1]``, a DNS
name, ``::ffff:127.0.0.1`` — and a string comparison of what was *written* lets a fault
reach something the allow list never named. So every address a fault reports in
:meth:`~paystab.chaos.base.Fault.touches` is canonical: an IP literal and a port
(``127.0.0.1:9001``, ``[::1]:9001``), the one resolved when the fault was prepared; the
fault then connects to exactly that IP (:func:`pin_url`, ``httpclient.request(via=)``),
so a DNS answer that changes between the check and the call changes nothing. Allow-list
entries written with a host name are resolved when checked (:func:`resolve_all`).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass

from paystab.exceptions import InvalidInput


def canonical_ip(host: str) -> str | None:
    """``host`` as a canonical IP string (IPv4-mapped IPv6 → IPv4), None if not an IP."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


def hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def split_hostport(name: str) -> tuple[str, str] | None:
    """``127.0.0.1:9001`` / ``[::1]:9001`` / ``host:*`` → (host, port); None otherwise."""
    if name.startswith("["):
        host, sep, rest = name[1:].partition("]")
        if not sep or not rest.startswith(":"):
            return None
        return host, rest[1:]
    host, sep, port = name.rpartition(":")
    if not sep or not host or ":" in host:
        return None
    return host, port


def canonical_name(name: str) -> str | None:
    """An address name in canonical form, or None when its host is not an IP literal."""
    parts = split_hostport(name)
    if parts is None:
        return None
    ip = canonical_ip(parts[0])
    if ip is None or not parts[1].isdigit():
        return None
    return hostport(ip, int(parts[1]))


def resolve_all(host: str, port: int) -> tuple[str, ...]:
    """Every canonical ``ip:port`` ``host`` resolves to (itself for an IP); () if none."""
    ip = canonical_ip(host)
    if ip is not None:
        return (hostport(ip, port),)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return ()
    found = (canonical_ip(str(info[4][0])) for info in infos)
    return tuple(dict.fromkeys(hostport(a, port) for a in found if a is not None))


@dataclass(frozen=True)
class Pinned:
    """Where a URL's host resolved: the IP a call goes to, and its ``ip:port`` name."""

    url: str
    ip: str
    address: str


def url_port(parts: urllib.parse.SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def pin_url(url: str, what: str = "target") -> Pinned:
    """Resolve ``url``'s host once; the call and the blast-radius check both use it."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = url_port(parts)
    except ValueError:
        raise InvalidInput(f"cannot read {url!r} as a URL", source=what) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http(s) URL", source=what,
                           expected="http://HOST:PORT") from None
    found = resolve_all(parts.hostname, port)
    if not found:
        raise InvalidInput(f"cannot resolve host {parts.hostname!r}", source=what)
    host = split_hostport(found[0])
    assert host is not None
    return Pinned(url, host[0], found[0])


def address_of_url(url: str | None) -> str | None:
    """The canonical address a URL resolves to first, None when it cannot be read."""
    if not url:
        return None
    try:
        return pin_url(url).address
    except InvalidInput:
        return None
