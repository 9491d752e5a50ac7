"""Small leaf helpers for durations and time zones, shared by config, calendar and report."""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$")


def parse_duration(text: str) -> float:
    """'250ms', '1s', '2m', '1h', '400d' -> seconds. Raises ValueError."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; use a number with a unit: 250ms, 1s, 2m, 1h, 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_timezone(name: str) -> dt.tzinfo:
    """'+01:00', 'UTC+1', 'Z', 'UTC' or an IANA name such as 'Europe/Paris'. Raises ValueError.

    A fixed offset is preferred for the contract ("GMT+1" as written): the IANA spelling of UTC+1 is
    'Etc/GMT-1', with the sign inverted, which is a trap we avoid by accepting '+01:00'.
    """
    text = name.strip()
    if text in ("Z", "UTC", "GMT"):
        return dt.timezone.utc
    m = _OFFSET.match(text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise ValueError(f"{name!r} is not a valid UTC offset (from -14:00 to +14:00)")
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use a fixed offset such as '+01:00' or an IANA name such as 'Europe/Paris'"
        ) from None


def parse_instant(text: str, tz: dt.tzinfo) -> dt.datetime:
    """ISO 8601; with an offset or 'Z' it is exact, without one it is read in `tz`. Raises ValueError."""
    s = text.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    value = dt.datetime.fromisoformat(s)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# The years the agent reads and writes. Dates a few years either side of a contract are all it needs; past
# these, a month's bounds or an instant shown in a +14:00 zone can leave datetime's years 1-9999 and fail
# long after the value was accepted.
FIRST_YEAR, LAST_YEAR = 2000, 2199
FIRST_INSTANT = dt.datetime(FIRST_YEAR, 1, 1, tzinfo=dt.timezone.utc).timestamp()
END_INSTANT = dt.datetime(LAST_YEAR + 1, 1, 1, tzinfo=dt.timezone.utc).timestamp()
INSTANT_RANGE = f"{FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31"


def parse_month(text: str) -> tuple[int, int]:
    """'2026-11' -> (2026, 11). Raises ValueError saying what a valid month is."""
    m = _MONTH.match(text.strip())
    if not m:
        raise ValueError(f"month must be YYYY-MM, such as 2026-11, got {text!r}")
    year, month = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 01 to 12 in YYYY-MM, got {text!r}")
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"month must be between {FIRST_YEAR}-01 and {LAST_YEAR}-12, got {text!r}")
    return year, month


def parse_day(text: str) -> dt.date:
    """'2026-11-23' -> that date, within the years parse_month takes. Raises ValueError saying what a valid
    day is."""
    try:
        day = dt.date.fromisoformat(text.strip()) if len(text.strip()) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError(f"must be a day YYYY-MM-DD, such as 2026-11-23, got {text!r}")
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"must be a day between {INSTANT_RANGE}, got {text!r}")
    return day


def in_range(epoch: float) -> bool:
    """Whether an instant lies within the years the agent handles (FIRST_YEAR to LAST_YEAR, UTC)."""
    return FIRST_INSTANT <= epoch < END_INSTANT


def hms(seconds: float) -> str:
    """28801 -> '8:00:01': a duration as people compare it with a deadline, to the second (rounded up,
    so that 8 h and a fraction of a second never reads as 8:00:00)."""
    total = int(-(-seconds // 1))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
