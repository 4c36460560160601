"""The SSRF guard: a webhook goes only to public addresses over http(s).

The host is resolved, EVERY address checked (loopback, private, link-local, shared, multicast,
reserved and unspecified ones refused) and the request then goes to the checked address itself
(the ``Host`` header and TLS name stay the original host), so a DNS answer that changes between
the check and the connection cannot redirect it. Redirects are never followed (a 3xx is a failed
attempt), so no second hop escapes the check. ``RELOVE_WEBHOOKS_ALLOW_PRIVATE=true`` lifts the
address rule (local development and tests), never the scheme rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from relove.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(InvalidInput):
    """The URL's host is (or resolves to) an address webhooks may not reach."""


def is_public(address: IPAddress) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not address.is_loopback
        and not address.is_link_local
    )


def check_url_form(url: str) -> str:
    """``url`` if it is an absolute http(s) URL without credentials; else one clear line."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("the webhook URL is empty")
    url = url.strip()
    if len(url) > 2000:
        raise InvalidInput("the webhook URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidInput(f"the webhook URL is not valid: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("the webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput("the webhook URL has no host")
    if parts.username or parts.password:
        raise InvalidInput("the webhook URL must not carry a user name or password")
    if port == 0:
        raise InvalidInput("the webhook URL's port must be 1–65535")
    if any(ch.isspace() for ch in url):
        raise InvalidInput("the webhook URL must not contain spaces")
    return url


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: the URL with the checked address in place of the host."""

    url: str  #: the request URL (host replaced by the address)
    host: str  #: the original host, for the ``Host`` header and the TLS name
    address: str


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise AddressRefused(f"cannot resolve {host!r}: {e}") from None
    found: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr not in found:
            found.append(addr)
    if not found:
        raise AddressRefused(f"{host!r} has no address")
    return found


async def target(url: str, *, allow_private: bool) -> Target:
    """Resolve and check ``url``'s host; :class:`AddressRefused` with one line if refused."""
    url = check_url_form(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not allow_private:
        for addr in addresses:
            if not is_public(addr):
                raise AddressRefused(
                    f"{host} resolves to {addr}, a private or reserved address; webhooks go "
                    "only to public addresses (RELOVE_WEBHOOKS_ALLOW_PRIVATE=true allows it)"
                )
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    direct = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = host if not parts.port else f"{host}:{parts.port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" + (f":{parts.port}" if parts.port else "")
    return Target(url=direct, host=host_header, address=str(chosen))
