"""Link URLs as Telegram checks and normalises them (button URLs, ``text_link`` entities).

Behaviour taken from tdlib's ``LinkManager::check_link`` and ``parse_url`` (facts, not code):
``example.com`` becomes ``http://example.com/``; scheme and host are lower-cased; a port is kept
only when given; the path gets a leading ``/``; spaces and control characters in the path are
percent-encoded; only ``http``/``https`` (and ``tg:``/``ton:``) are links; a host needs a dot.
``tg://user?id=<id>`` is not a link but a mention of that user (a ``text_mention`` entity).
"""

from __future__ import annotations

import ipaddress
import re

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PART_SYMBOLS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          ".-_!$,~*'();&+=")
_HEX = frozenset("0123456789abcdefABCDEF")
_PROTOCOL_END = re.compile(r"[:/?#@\[\]]")
_TG_HOST = re.compile(r"^[A-Za-z0-9_-]*$")


class LinkError(ValueError):
    """``str(e)`` is Telegram's description: ``URL 'x' is invalid: Wrong HTTP URL``."""


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _check_part(part: str, name: str, allow_colon: bool) -> None:
    i = 0
    while i < len(part):
        c = part[i]
        if c in _PART_SYMBOLS or (allow_colon and c == ":") or ord(c) >= 128:
            i += 1
            continue
        if c == "%":
            if part[i + 1:i + 2] in _HEX and part[i + 2:i + 3] in _HEX and len(part) > i + 2:
                i += 3
                continue
            raise ValueError(f"Wrong percent-encoded symbol in URL {name}")
        raise ValueError(f"Disallowed character in URL {name}")


class _Url:
    __slots__ = ("https", "userinfo", "host", "ipv6", "port", "path")

    def __init__(self, https: bool, userinfo: str, host: str, ipv6: bool, port: int,
                 path: str) -> None:
        self.https, self.userinfo, self.host, self.ipv6 = https, userinfo, host, ipv6
        self.port, self.path = port, path

    def text(self) -> str:
        auth = f"{self.userinfo}@" if self.userinfo else ""
        port = f":{self.port}" if self.port else ""
        return f"{'https' if self.https else 'http'}://{auth}{self.host}{port}{self.path}"


def _parse_url(link: str) -> _Url:
    """``[http[s]://][userinfo@]host[:port][/path]``; ValueError with tdlib's reason."""
    m = _PROTOCOL_END.search(link)
    cut = m.start() if m else len(link)
    https = False
    rest = link
    if link.startswith("://", cut):
        protocol = ascii_lower(link[:cut])
        if protocol not in ("http", "https"):
            raise ValueError("Unsupported URL protocol")
        https = protocol == "https"
        rest = link[cut + 3:]
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
              default=len(rest))
    authority, path = rest[:end], rest[end:]
    k = len(authority) - 1
    while k > 0 and authority[k] not in ":]@":
        k -= 1
    port = 0
    host_part = authority
    if k > 0 and authority[k] == ":":
        digits = authority[k + 1:]
        while len(digits) > 1 and digits[0] == "0":
            digits = digits[1:]
        port = int(digits) if digits.isascii() and digits.isdigit() else -1
        if port == 0:
            port = -1
        host_part = authority[:k]
    if port < 0 or port > 65535:
        raise ValueError("Wrong port number specified in the URL")
    at = host_part.rfind("@")
    userinfo, host = (host_part[:at], host_part[at + 1:]) if at >= 0 else ("", host_part)
    ipv6 = False
    if host.startswith("[") and host.endswith("]") and len(host) >= 2:
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("Wrong IPv6 address specified in the URL") from None
        ipv6 = True
    if not host:
        raise ValueError("URL host is empty")
    if host == ".":
        raise ValueError("Host is invalid")
    path = path.rstrip(" \t\n\r\v\f") or "/"
    if not path.startswith("/"):
        path = "/" + path
    path = "".join(f"%{ord(c):02X}" if ord(c) <= 0x20 else c for c in path)
    host = ascii_lower(host)
    if not ipv6:
        _check_part(host, "host", False)
        _check_part(userinfo, "userinfo", True)
    return _Url(https, userinfo, host, ipv6, port, path)


def _checked(link: str) -> str:
    lowered = ascii_lower(link)
    scheme = next((s for s in ("tg", "ton", "tonsite") if lowered.startswith(s + ":")), None)
    rest = link
    if scheme is not None:
        rest = link[len(scheme) + 1:]
        if rest.startswith("//"):
            rest = rest[2:]
    url = _parse_url(rest)
    if scheme is not None:
        if ascii_lower(rest).startswith("http://") or url.https or url.userinfo or url.port or (
                url.ipv6):
            raise ValueError("Wrong tg URL" if scheme == "tg" else "Wrong ton URL")
        query = url.path
        if len(query) > 1 and query[1] == "?":
            query = query[1:]
        allowed = url.host.replace(".", "") if scheme == "tonsite" else url.host
        if not _TG_HOST.match(allowed):
            raise ValueError("Unallowed characters in URL host")
        return f"{scheme}://{url.host}{query}"
    if "." not in url.host and not url.ipv6:
        raise ValueError("Wrong HTTP URL")
    return url.text()


def check_link(link: str) -> str:
    """The normalised link, or :class:`LinkError` (``URL 'x' is invalid: …``)."""
    try:
        return _checked(link)
    except ValueError as e:
        raise LinkError(f"URL '{link}' is invalid: {e}") from None


def checked_link(link: str) -> str | None:
    """The normalised link, or None where Telegram silently drops it (parse modes)."""
    try:
        return _checked(link)
    except ValueError:
        return None


def link_user_id(url: str) -> int | None:
    """The user a ``tg://user?id=<id>`` link mentions, or None for any other URL."""
    rest = ascii_lower(url)
    if not rest.startswith("tg:"):
        return None
    rest = rest[3:].removeprefix("//")
    if not rest.startswith("user") or (len(rest) > 4 and rest[4] not in "/?#"):
        return None
    rest = rest[4:].removeprefix("/")
    if not rest.startswith("?"):
        return None
    rest = rest[1:].split("#", 1)[0]
    for parameter in rest.split("&"):
        key, _, value = parameter.partition("=")
        if key == "id":
            if not re.fullmatch(r"-?[0-9]{1,19}", value):
                return None
            user_id = int(value)
            return user_id if 0 < user_id < 1 << 40 else None
    return None
