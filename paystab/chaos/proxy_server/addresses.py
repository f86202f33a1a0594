"""``host:port`` strings as Toxiproxy writes them, and the loopback rule for binding.

Toxiproxy's ``listen`` and ``upstream`` fields are Go dial strings: ``127.0.0.1:8474``,
``localhost:6379``, ``[::1]:5432``. paystab binds loopback only unless the server was given
a token (a fault proxy on a public interface lets anyone break your traffic), so every
listen address goes through :func:`is_loopback_host`.
"""

from __future__ import annotations


class AddressError(ValueError):
    """A ``host:port`` string that cannot be used; the message says why."""


def split_host_port(text: str) -> tuple[str, int]:
    """``"127.0.0.1:80"`` → ``("127.0.0.1", 80)``; ``"[::1]:80"`` → ``("::1", 80)``.

    An empty host (``":80"``) means every interface, as in Go.
    """
    if not isinstance(text, str) or ":" not in text:
        raise AddressError(f"{text!r} is not host:port")
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise AddressError(f"{text!r} is not [ipv6]:port")
        host, port_text = text[1:close], text[close + 2 :]
    else:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise AddressError(f"{text!r}: write IPv6 addresses as [addr]:port")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AddressError(f"{text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


