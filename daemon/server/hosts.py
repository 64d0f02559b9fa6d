"""Which names a request may call the daemon by: the defence against DNS rebinding.

A web page on a name its owner controls can rebind that name to 127.0.0.1
and then talk to a tokenless loopback daemon as if it were same-origin: the
browser sends `Host: evil.example:9655` and a matching Origin. So the Host
header is checked against an allow-list of its own (loopback names, any IP
literal, this machine's hostname and `server.allowed_hosts`), and an Origin,
when a browser sends one, must name an allowed host on the same port over
http or https. Anything else is refused before a route sees it, and the
refusal never repeats the foreign name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def split_host(value: str) -> tuple[str, str | None] | None:
    """A Host header as (name, port): `name`, `name:port`, `[v6]` or `[v6]:port`; None when malformed."""
    if not value or not value.isascii() or any(c.isspace() or c in "/\\@?#" for c in value):
        return None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = value.rpartition(":")
        if not colon:
            name, port = value, None
        elif ":" in name:  # an unbracketed IPv6 literal is not a valid Host
            return None
        else:
            port = port_text
    if port is not None and not (port.isdigit() and len(port) <= 5):
        return None
    return name.lower().rstrip("."), port


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalise_name(name: str) -> str:
    """An allowed-host entry as it is compared: lower case, no trailing dot."""
    return name.strip().lower().rstrip(".")


def machine_names() -> tuple[str, ...]:
    """This machine's own name, short and as configured: a LAN user may call the daemon by it."""
    full = normalise_name(socket.gethostname())
    return tuple(dict.fromkeys([full, full.split(".", 1)[0]])) if full else ()


@dataclass(frozen=True)
class HostPolicy:
    """The names a request's Host (and a browser's Origin) may use. An entry starting with a dot allows
    every name under it (`.example.internal`); `*` allows any name, for operators who front the daemon
    with their own checks."""

    names: frozenset[str]

    @classmethod
    def build(cls, configured: Iterable[str] = ()) -> HostPolicy:
        return cls(frozenset([*LOOPBACK_NAMES, *machine_names(), *(normalise_name(n) for n in configured)]))

    def allows_name(self, name: str) -> bool:
        if "*" in self.names or name in self.names or is_ip_literal(name):
            return True
        return any(entry.startswith(".") and name.endswith(entry) for entry in self.names)

    def host_refusal(self, host_header: str | None) -> str | None:
        """Why a Host header is refused, or None. HTTP/1.0 clients may send none: they get through,
        since a browser always sends one."""
        if host_header is None:
            return None
        parsed = split_host(host_header)
        if parsed is None:
            return "the Host header is malformed"
        if not self.allows_name(parsed[0]):
            return "the Host header names a host this daemon does not serve (see server.allowed_hosts)"
        return None

    def origin_refusal(self, origin: str, host_header: str | None) -> str | None:
        """Why a browser's Origin is refused, or None: it must be http(s), an allowed host, and the port
        the request was sent to."""
        try:
            parts = urlsplit(origin)
            origin_port = parts.port
        except ValueError:
            return "the Origin header is malformed"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "cross-origin requests are refused: use the benchd CLI or a client without Origin"
        if not self.allows_name(normalise_name(parts.hostname)):
            return "cross-origin requests are refused: the Origin names a host this daemon does not serve"
        host = split_host(host_header or "")
        request_port = host[1] if host else None
        default = "443" if parts.scheme == "https" else "80"
        if str(origin_port or default) != (request_port or "80"):
            return "cross-origin requests are refused: the Origin is another port"
        return None
