"""Entities Telegram finds by itself in any message text: ``mention``, ``hashtag``, ``cashtag``,
``bot_command``, ``url``, ``email`` and ``bank_card_number``.

The rules are tdlib's ``find_entities`` (``td/telegram/MessageEntity.cpp``), re-implemented from
their behaviour: ``@name`` needs 4+ characters (or a known short name), ``/cmd@bot`` is a command
unless glued to a word, ``#tag`` needs a letter, ``$USD`` upper-case, a link without a scheme
needs a known top-level domain (``example.com`` yes, ``notes.txt`` no), trailing punctuation is
not part of a link, ``name@example.com`` is an email, card numbers pass the Luhn check.
Telegram's servers also find phone numbers; the sandbox does not.

:func:`find_entities` works on code points and returns entities with UTF-16 offsets.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ALNUM_US = _ALNUM | {"_"}
_ALNUM_US_MINUS = _ALNUM_US | {"-"}
_DIGITS = frozenset("0123456789")
_SHORT_USERNAMES = frozenset({"gif", "nft", "pic", "ufc", "vid"})
_BAD_PATH_END = frozenset(".:;,('?!`")
_NOT_PATH = frozenset('\n<>"\u00ab\u00bb')
_NOT_USER_DATA = frozenset("\n/[]{}()'`<>\"@\u00ab\u00bb")
#: text without any of these (and with few digits) has nothing to find: the common fast path
_TRIGGERS = re.compile(r"[@/#$.:]|[0-9][ 0-9-]{11,}[0-9]")


@lru_cache(maxsize=4096)
def _category(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat[0] == "L":
        return "L"
    if cat == "Nd":
        return "Nd"
    if cat[0] in "NZ":
        return cat[0]
    return "O"


def _is_word(ch: str) -> bool:
    return ch == "_" or _category(ch) in ("L", "Nd", "N")


def _is_hashtag_letter(ch: str) -> bool:
    return ch in ("_", "\u200c", "\u00b7") or 0xD80 <= ord(ch) <= 0xDFF or (
        _category(ch) in ("L", "Nd"))


def _is_url_unicode(ch: str) -> bool:
    code = ord(ch)
    if 0x2000 <= code <= 0x206F:
        return code in (0x200C, 0x200D) or 0x2010 <= code <= 0x2015
    return _category(ch) != "Z"


def _is_path(ch: str) -> bool:
    return ch not in _NOT_PATH and _is_url_unicode(ch)


def _is_user_data(ch: str) -> bool:
    return ch not in _NOT_USER_DATA and _is_url_unicode(ch)


def _is_domain(ch: str) -> bool:
    if ord(ch) < 0xC0:
        return ch == "." or ch == "~" or ch in _ALNUM_US_MINUS
    return _is_url_unicode(ch)


def _is_protocol(ch: str) -> bool:
    if ord(ch) < 0x80:
        return ch in _ALNUM or ch in "+-"
    return _category(ch) != "Z"


def _lower(text: str) -> str:
    return text.lower() if text.isascii() else "".join(
        c.lower() if c.isascii() else c for c in text)


@lru_cache(maxsize=1)
def _tlds() -> frozenset[str]:
    lines = (Path(__file__).parent / "tlds.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _is_common_tld(tld: str) -> bool:
    if tld.isascii() and tld.islower() and tld.isalpha():
        return tld in _tlds()
    lowered = tld.lower()
    if lowered != tld and lowered[1:] == tld[1:]:
        return False  # "Com" after a sentence's full stop is not a domain
    return lowered in _tlds()


# --- mentions, commands, hashtags, cashtags ---------------------------------------------------
def _mentions(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    n = len(text)
    p = text.find("@")
    while p >= 0:
        nxt = p + 1
        if not (p > 0 and _is_word(text[p - 1])):
            q = p + 1
            while q < n and text[q] in _ALNUM_US:
                q += 1
            nxt = q
            size = q - p - 1
            if 2 <= size <= 32 and not (q < n and _is_word(text[q])):
                name = text[p + 1:q]
                if size >= 4 or name.lower() in _SHORT_USERNAMES:
                    found.append((p, q))
        p = text.find("@", nxt)
    return found


def _bot_commands(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    n = len(text)
    p = text.find("/")
    while p >= 0:
        nxt = p + 1
        prev = text[p - 1] if p > 0 else ""
        if not (prev and (_is_word(prev) or prev in "/<>")):
            q = p + 1
            while q < n and text[q] in _ALNUM_US:
                q += 1
            nxt = q
            ok = 1 <= q - p - 1 <= 64
            if ok and q < n and text[q] == "@":
                r = q + 1
                while r < n and text[r] in _ALNUM_US:
                    r += 1
                ok = 3 <= r - q - 1 <= 32
                q = nxt = r
            if ok and not (q < n and (_is_word(text[q]) or text[q] in "/<>")):
                found.append((p, q))
        p = text.find("/", nxt)
    return found


def _hashtags(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    n = len(text)
    p = text.find("#")
    while p >= 0:
        nxt = p + 1
        if not (p > 0 and _is_hashtag_letter(text[p - 1])):
            q = p + 1
            size = 0
            end = -1
            letter = False
            while q < n and _is_hashtag_letter(text[q]):
                q += 1
                if size == 255:
                    end = q
                if size != 256:
                    letter = letter or _category(text[q - 1]) == "L"
                    size += 1
            if end < 0:
                end = q
            nxt = q
            if size >= 1:
                if end == q and q < n and text[q] == "@":
                    r = q + 1
                    while r < n and r - q < 33 and text[r] in _ALNUM_US:
                        r += 1
                    if r - q - 1 >= 3:
                        q = end = nxt = r
                if not (q < n and text[q] == "#") and letter:
                    found.append((p, end))
        p = text.find("#", nxt)
    return found


def _cashtags(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    n = len(text)
    p = text.find("$")
    while p >= 0:
        nxt = p + 1
        prev = text[p - 1] if p > 0 else ""
        if not (prev and (_is_hashtag_letter(prev) or prev == "$")):
            q = p + 1
            if text.startswith("1INCH", q):
                q += 5
            else:
                while q < n and "A" <= text[q] <= "Z":
                    q += 1
            end = nxt = q
            if 1 <= end - p - 1 <= 8:
                if q < n and text[q] == "@":
                    r = q + 1
                    while r < n and text[r] in _ALNUM_US:
                        r += 1
                    if 3 <= r - q - 1 <= 32:
                        end = q = nxt = r
                if not (end != n and (_is_hashtag_letter(text[q]) or text[q] == "$")):
                    found.append((p, end))
        p = text.find("$", nxt)
    return found


# --- bank cards -------------------------------------------------------------------------------
def _luhn_card(number: str) -> bool:
    digits = [int(c) for c in number if c in _DIGITS]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += d if i % 2 == 0 else (2 * d if d < 5 else 2 * d - 9)
    if total % 10:
        return False
    count = len(digits)
    p2 = digits[0] * 10 + digits[1]
    p4 = p2 * 100 + digits[2] * 10 + digits[3]
    if digits[0] == 4:
        return count in (13, 16, 18, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return count == 16
    if p2 in (34, 37):
        return count == 15
    if p2 in (62, 81):
        return count >= 16
    if 2200 <= p4 <= 2204:
        return count == 16
    return True


def _bank_cards(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    n = len(text)
    p = 0
    while True:
        while p < n and text[p] not in _DIGITS:
            p += 1
        if p == n:
            return found
        if p > 0 and (text[p - 1] in ".,+-_" or _category(text[p - 1]) == "L"):
            while p < n and (text[p] in _DIGITS or text[p] in " -"):
                p += 1
            continue
        begin = p
        digits = 0
        while p < n and (text[p] in _DIGITS or text[p] in " -"):
            if text[p] == " " and 16 <= digits <= 19 and digits == p - begin:
                break
            digits += text[p] in _DIGITS
            p += 1
        if not 13 <= digits <= 19:
            continue
        end = p
        while text[end - 1] not in _DIGITS:
            end -= 1
        if end - begin > 2 * digits - 1:
            continue
        if end != n and (text[end] in "-_" or _category(text[end]) == "L"):
            continue
        if _luhn_card(text[begin:end]):
            found.append((begin, end))


# --- links ------------------------------------------------------------------------------------
def _path_end(text: str, start: int) -> int:
    """End of the path that starts with ``text[start]`` (one of ``/?#``)."""
    end = start + 1
    while end < len(text) and _is_path(text[end]):
        end += 1
    while end > start + 1 and text[end - 1] in _BAD_PATH_END:
        end -= 1
    return end if text[start] == "/" or end > start + 1 else start


def _tg_urls(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    n = len(text)
    p = 0
    while n - p > 5:
        colon = text.find(":", p)
        if colon < 0:
            break
        begin = -1
        if text.startswith("//", colon + 1):
            for scheme in ("tg", "ton", "tonsite"):
                if colon >= len(scheme) and text[colon - len(scheme):colon].lower() == scheme:
                    begin = colon - len(scheme)
                    break
        if begin < 0:
            p = colon + 1
            continue
        p = domain = colon + 3
        while p < n and p - domain != 253 and text[p] in _ALNUM_US_MINUS:
            p += 1
        if p == domain:
            continue
        if p < n and text[p] in "/?#":
            p = _path_end(text, p)
        found.append((begin, p))
    return found


def _url_candidates(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    n = len(text)
    base = 0
    while True:
        dot = text.find(".", base)
        if dot < 0 or dot + 1 == n:
            return found
        if text[dot + 1] == " ":
            base = dot + 2
            continue
        begin = dot
        while begin != base and _is_domain(text[begin - 1]):
            begin -= 1
        last_at = -1
        end = dot
        while end != n:
            if text[end] == "@":
                last_at = end
            elif not _is_domain(text[end]):
                break
            end += 1
        if last_at >= 0:
            while begin != base and _is_user_data(text[begin - 1]):
                begin -= 1
        if end != n and text[end] == ":":
            port_end = end + 1
            while port_end < n and text[port_end] in _DIGITS:
                port_end += 1
            digits = text[end + 1:port_end].lstrip("0")
            if digits and len(digits) <= 5 and int(digits) <= 65535:
                end = port_end
        if end != n and text[end] in "/?#":
            end = _path_end(text, end)
        while end > dot + 1 and text[end - 1] == ".":
            end -= 1
        bad = False
        if begin != base and text[begin - 1] == "@":
            bad = last_at >= 0
            user = begin - 1
            while user != base and _is_user_data(text[user - 1]):
                user -= 1
            bad = bad or user == begin - 1
            begin = user
        if begin != base:
            prefix = text[base:begin]
            if len(prefix) >= 6 and prefix.endswith("://"):
                start = begin - 3
                while start != base and _is_protocol(text[start - 1]):
                    start -= 1
                protocol = _lower(text[start:begin - 3])
                if protocol.endswith("http") and protocol != "shttp":
                    begin -= 7
                elif protocol.endswith("https"):
                    begin -= 8
                elif protocol.endswith("ftp") and protocol not in ("tftp", "sftp"):
                    begin -= 6
                elif protocol.endswith("tonsite"):
                    begin -= 10
                else:
                    bad = True
            elif _is_word(text[begin - 1]) or text[begin - 1] in "/#@":
                bad = True
        if not bad:
            if end > dot + 1:
                found.append((begin, end))
            while end != n and text[end] == ".":
                end += 1
        else:
            while text[end - 1] != ".":
                end -= 1
        base = max(end, dot + 1)


def _is_email(text: str) -> bool:
    user, at, domain = text.partition("@")
    if not at or not domain:
        return False
    prev = parts = 0
    for i, ch in enumerate(user):
        if ch in ".+":
            if i - prev >= 27:
                return False
            parts += 1
            prev = i + 1
        elif ch not in _ALNUM_US_MINUS:
            return False
    if parts + 1 >= 12 or not 0 < len(user) - prev < 36:
        return False
    labels = domain.split(".")
    if not 1 < len(labels) <= 7:
        return False
    tld = labels[-1]
    if not 1 < len(tld) < 9 or not (tld.isascii() and tld.isalpha()):
        return False
    for label in labels[:-1]:
        if not label or len(label) >= 31 or any(c not in _ALNUM_US_MINUS for c in label):
            return False
        if label[0] not in _ALNUM or label[-1] not in _ALNUM:
            return False
    return True


def _fix_url(url: str) -> int:
    """How much of a URL candidate is a link (0: none of it)."""
    rest = url
    has_protocol = False
    if _lower(url[:10]).startswith(("http://", "https://", "ftp://", "tonsite://")):
        rest = url[url.find(":") + 3:]
        has_protocol = True
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
              default=len(rest))
    domain, path = rest[:cut], rest[cut:]
    domain = domain[domain.find("@") + 1:]
    if ":" in domain:
        domain = domain[:domain.rfind(":")]
    if _lower(domain) == "teiegram.org":
        return 0
    balance = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    keep = len(path)
    for i, ch in enumerate(path):
        if ch in balance:
            balance[ch] += 1
        elif ch in closing:
            balance[closing[ch]] -= 1
            if balance[closing[ch]] < 0:
                keep = i
                break
    while keep > 0 and path[keep - 1] in _BAD_PATH_END:
        keep -= 1
    length = len(url) - (len(path) - keep)
    labels = domain.split(".")
    if any(not label or len(label) >= 64 or label.endswith("-") for label in labels):
        return 0
    if len(labels) == 1:
        return 0
    if len(labels) == 4 and all(_ipv4_part(label) for label in labels):
        return length
    if all(c in _DIGITS for c in domain.replace(".", "")):
        return 0
    tld = labels[-1]
    if len(tld) <= 1:
        return 0
    if tld.startswith("xn--"):
        if len(tld) <= 5 or any(c not in _ALNUM for c in tld[4:]):
            return 0
    elif "_" in tld or "-" in tld or (not has_protocol and not _is_common_tld(tld)):
        return 0
    if "_" in labels[-2]:
        return 0
    return length


def _ipv4_part(label: str) -> bool:
    if not label.isascii() or not label.isdigit() or len(label) > 3:
        return False
    return not (len(label) > 1 and label[0] == "0") and int(label) <= 255


def _links(text: str) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    for begin, end in _url_candidates(text):
        candidate = text[begin:end]
        if _is_email(candidate):
            found.append(("email", begin, end))
        elif candidate.startswith("mailto:") and _is_email(candidate[7:]):
            found.append(("email", begin + 7, end))
        else:
            length = _fix_url(candidate)
            if length:
                found.append(("url", begin, begin + length))
    return found


# --- all together -----------------------------------------------------------------------------
def find_entities(text: str, *, bot_commands: bool = True) -> list[dict[str, Any]]:
    """Auto-detected entities of ``text`` (sorted, non-overlapping, UTF-16 offsets)."""
    if not _TRIGGERS.search(text):
        return []
    spans: list[tuple[int, int, str]] = []
    spans += [(b, e, "mention") for b, e in _mentions(text)]
    if bot_commands:
        spans += [(b, e, "bot_command") for b, e in _bot_commands(text)]
    spans += [(b, e, "hashtag") for b, e in _hashtags(text)]
    spans += [(b, e, "cashtag") for b, e in _cashtags(text)]
    spans += [(b, e, "bank_card_number") for b, e in _bank_cards(text)]
    spans += [(b, e, "url") for b, e in _tg_urls(text)]
    spans += [(b, e, kind) for kind, b, e in _links(text)]
    spans.sort(key=lambda s: (s[0], s[0] - s[1]))
    kept: list[tuple[int, int, str]] = []
    for span in spans:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    if text.isascii():
        return [{"type": k, "offset": b, "length": e - b} for b, e, k in kept]
    return [{"type": k, "offset": _u16(text, b), "length": _u16(text, e) - _u16(text, b)}
            for b, e, k in kept]


def _u16(text: str, index: int) -> int:
    prefix = text[:index]
    return index + sum(1 for ch in prefix if ord(ch) > 0xFFFF)
