"""Who may talk to the sandbox: its own machine's programs, never a web page elsewhere.

Two rules, applied by :func:`access_middleware` to every request:

1. **Host.** The ``Host`` header must name a loopback name or address (``localhost``,
   ``*.localhost``, ``127.0.0.0/8``, ``::1``), the specific address the sandbox was told to listen
   on, or a host configured explicitly (``relove sandbox --allow-host NAME``,
   ``RELOVE_SANDBOX_ALLOWED_HOSTS``). A page on ``http://evil.example:8081`` whose name an
   attacker re-points at 127.0.0.1 (DNS rebinding) sends ``Host: evil.example:8081`` and is
   refused, before anything else looks at the request.
2. **Browsers.** The Bot API (``/bot…``, ``/file/bot…``) and the control API (``/api/…``) refuse a
   request a browser marks as coming from another site (``Sec-Fetch-Site: cross-site`` or
   ``same-site``) or whose ``Origin`` / ``Referer`` is not this server's own origin. An
   ``<img>``, ``<form>`` or ``fetch()`` on any other page therefore gets 403 and changes nothing;
   programs (aiogram, python-telegram-bot, curl) send none of these headers and are unaffected,
   and so is the sandbox's own web chat (same origin).

The web chat's page and static files only need rule 1: linking to the chat from elsewhere is fine.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

#: paths whose requests must not come from another site's page
GUARDED_PREFIXES = ("/bot", "/file/bot", "/api/")
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "*"})
CROSS_SITE = frozenset({"cross-site", "same-site"})
_HOST_NAME = re.compile(r"^[a-z0-9_.:\[\]-]{1,253}$")
DEFAULT_PORTS = {"http": 80, "https": 443}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def normalise_host(value: str) -> str:
    """A host name or address as compared here: lower case, no brackets, no trailing dot."""
    host = value.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def check_host_name(value: str) -> str:
    """An ``--allow-host`` value, normalised; ``ValueError`` with one line if it is not a bare
    host name or address (no scheme, port or path)."""
    host = normalise_host(value)
    if not host or not _HOST_NAME.match(host) or ("://" in value) or (
            ":" in host and not _is_ip(host)):
        raise ValueError(f"{value!r} is not a host name or IP address (no scheme, port or path)")
    return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    host = normalise_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True  # browsers resolve these to loopback themselves (RFC 6761), never via DNS
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host_header(value: str) -> tuple[str, int | None] | None:
    """(host, port) of a ``Host`` header, or None when it does not parse."""
    try:
        parts = urlsplit("//" + value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or parts.username is not None or parts.path:
        return None
    return normalise_host(parts.hostname), port


@dataclass(frozen=True)
class AccessPolicy:
    """The hosts the sandbox answers to besides loopback ones (normalised, see
    :func:`check_host_name`)."""

    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def build(cls, listen_host: str, allowed: Iterable[str] = ()) -> AccessPolicy:
        hosts = {check_host_name(h) for h in allowed}
        listen = normalise_host(listen_host)
        if listen not in WILDCARD_ADDRESSES:
            hosts.add(listen)  # an explicit address to listen on is an explicit choice too
        return cls(frozenset(hosts))

    def host_allowed(self, host_header: str | None) -> bool:
        if host_header is None:
            return True  # HTTP/1.0 without Host: no browser sends that
        parsed = _split_host_header(host_header)
        if parsed is None:
            return False
        host = parsed[0]
        return is_loopback(host) or host in self.allowed_hosts

    def same_origin(self, url: str, host_header: str | None, scheme: str = "http") -> bool:
        """Whether ``url`` (an ``Origin`` or ``Referer``) names this very server: an allowed
        host, and the scheme, host and port the request was sent to."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme != scheme or scheme not in DEFAULT_PORTS or not parts.hostname or (
                host_header is None):
            return False
        target = _split_host_header(host_header)
        if target is None:
            return False
        origin_host = normalise_host(parts.hostname)
        origin_port = port or DEFAULT_PORTS[parts.scheme]
        target_port = target[1] or DEFAULT_PORTS[parts.scheme]
        return (self.host_allowed(host_header) and origin_host == target[0]
                and origin_port == target_port)

    def browser_refusal(self, request: web.Request) -> str | None:
        """Why a browser-originated request to a guarded path is refused, or None."""
        site = request.headers.get("Sec-Fetch-Site", "").lower()
        if site in CROSS_SITE:
            return f"requests from other web sites are refused (Sec-Fetch-Site: {site})"
        host = request.headers.get("Host")
        origin = request.headers.get("Origin")
        if origin is not None and not self.same_origin(origin, host, request.scheme):
            return "requests from other web sites are refused (Origin)"
        referer = request.headers.get("Referer")
        if referer is not None and not self.same_origin(referer, host, request.scheme):
            return "requests from other web sites are refused (Referer)"
        return None


def _refuse(request: web.Request, reason: str) -> web.Response:
    if request.path.startswith(("/bot", "/file/bot")):
        body = {"ok": False, "error_code": 403, "description": f"Forbidden: {reason}"}
    else:
        body = {"error": reason}
    return web.Response(body=json.dumps(body).encode(), status=403,
                        content_type="application/json")


def access_middleware(policy: AccessPolicy,
                      count: Callable[[str], None] | None = None) -> Middleware:
    """The middleware applying ``policy``; ``count("host" | "browser")`` hears each refusal."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not policy.host_allowed(host):
            if count is not None:
                count("host")
            return _refuse(request, f"host {host!r} is not allowed: the sandbox answers to "
                                    "loopback names and hosts given with --allow-host")
        if request.path.startswith(GUARDED_PREFIXES):
            reason = policy.browser_refusal(request)
            if reason is not None:
                if count is not None:
                    count("browser")
                return _refuse(request, reason)
        return await handler(request)

    return guard
