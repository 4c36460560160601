"""The user's local time: ``wait: {until: "10:00"}`` and quiet hours (``RELOVE_QUIET_HOURS``,
parsed by :func:`relove.config.quiet_range`).

A user's zone is ``markers.tz`` (an IANA name such as ``Asia/Vladivostok``) when it is a valid
one, else ``RELOVE_DEFAULT_TZ``. Local times are wall-clock times in that zone, so a daylight
saving change moves them in UTC as it should (10:00 in Berlin is 09:00 UTC in winter, 08:00 UTC
in summer); a time that does not exist on a spring-forward day is taken after the jump.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_hhmm(value: Any) -> time:
    if not isinstance(value, str) or not _HHMM.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a time of day like 10:00")
    h, m = value.strip().split(":")
    return time(int(h), int(m))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Moscow)") from e


def user_zone(markers: Mapping[str, Any] | None, default: tzinfo) -> tzinfo:
    name = (markers or {}).get("tz")
    if isinstance(name, str) and name and len(name) <= 64:
        try:
            return zone(name)
        except ValueError:
            pass
    return default


def _at(day: datetime, t: time, tz: tzinfo) -> datetime:
    """``t`` on ``day``'s date in ``tz``, as UTC (after the jump if it does not exist)."""
    local = datetime.combine(day.date(), t, tzinfo=tz)
    back = local.astimezone(UTC).astimezone(tz)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):  # in a spring-forward gap
        local = local + timedelta(hours=1)
    return local.astimezone(UTC)


def next_local(now: datetime, t: time, tz: tzinfo) -> datetime:
    """The next moment strictly after ``now`` when the clock in ``tz`` shows ``t``."""
    local = now.astimezone(tz)
    candidate = _at(local, t, tz)
    if candidate <= now:
        candidate = _at(local + timedelta(days=1), t, tz)
    return candidate


def quiet_until(now: datetime, quiet: tuple[int, int] | None, tz: tzinfo) -> datetime | None:
    """When the quiet hours around ``now`` end (UTC), or None when it is not quiet."""
    if quiet is None:
        return None
    start, end = quiet
    hour = now.astimezone(tz).hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    return next_local(now, time(end), tz) if inside else None
