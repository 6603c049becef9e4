"""Records' ``time`` values as epoch seconds, a batch at a time: the common form
``YYYY-MM-DDTHH:MM:SS[.ffffff][Z]`` is parsed with numpy in one pass; every other value goes
through ``records.epoch`` one by one, so the result is exactly what ``epoch`` gives. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Ints = npt.NDArray[np.int64]
    Flags = npt.NDArray[np.bool_]

WIDTH = 27  # "YYYY-MM-DDTHH:MM:SS.ffffffZ"
DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)
SEPARATORS = {4: b"-", 7: b"-", 10: b"T", 13: b":", 16: b":"}
EXACT_US = 2**53  # beyond, int64 -> float64 could round where Python's division does not


def epochs(
    values: Sequence[object], one: Callable[[object], float | None]
) -> npt.NDArray[np.float64]:
    """Epoch seconds of each value (NaN where ``one`` gives None)."""
    import numpy as np

    out = np.full(len(values), np.nan)
    fast = _iso(values)
    if fast is None:
        rest: Sequence[int] = range(len(values))
    else:
        ok, micros = fast
        out[ok] = micros[ok] / 1e6
        rest = np.flatnonzero(~ok).tolist()
    for i in rest:
        when = one(values[i])
        if when is not None:
            out[i] = when
    return out


def _iso(values: Sequence[object]) -> tuple[Flags, Ints] | None:
    """(which values are in the common form, their epoch microseconds), or None."""
    import numpy as np

    if not values or set(map(type, values)) != {str}:
        return None
    try:
        raw = np.array(values, dtype=f"S{WIDTH}")  # longer strings are cut: their length tells
    except UnicodeEncodeError:
        return None
    chars = raw.view(np.uint8).reshape(len(values), WIDTH)
    length = np.array([len(v) for v in values if isinstance(v, str)])
    digit = chars.astype(np.int64) - 48
    ok = (length >= 19) & (length <= WIDTH)
    ok &= ((digit[:, DIGITS] >= 0) & (digit[:, DIGITS] <= 9)).all(axis=1)
    for at, char in SEPARATORS.items():
        ok &= chars[:, at] == ord(char)
    zulu = chars[np.arange(len(values)), np.clip(length - 1, 0, WIDTH - 1)] == ord("Z")
    body = length - zulu
    ok &= (body == 19) | ((body >= 21) & (body <= 26) & (chars[:, 19] == ord(".")))
    micros = np.zeros(len(values), np.int64)
    for k in range(6):
        used = body > 20 + k
        ok &= ~used | ((digit[:, 20 + k] >= 0) & (digit[:, 20 + k] <= 9))
        micros += np.where(used, digit[:, 20 + k], 0) * 10 ** (5 - k)
    fields = [_number(digit, at) for at in (0, 5, 8, 11, 14, 17)]
    ok &= _valid(*fields)
    year, month, day, hour, minute, second = (np.where(ok, f, 1) for f in fields)
    seconds = ((_days(year, month, day) * 24 + hour) * 60 + minute) * 60 + second
    micros += seconds * 1_000_000
    ok &= np.abs(micros) < EXACT_US
    return ok, micros


def _number(digit: Ints, at: int) -> Ints:
    width = 4 if at == 0 else 2
    value = digit[:, at]
    for i in range(1, width):
        value = value * 10 + digit[:, at + i]
    return value


def _valid(year: Ints, month: Ints, day: Ints, hour: Ints, minute: Ints, second: Ints) -> Flags:
    import numpy as np

    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    lengths = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    last = lengths[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    ok: Flags = (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= last)
    return ok & (hour <= 23) & (minute <= 59) & (second <= 59)


def _days(year: Ints, month: Ints, day: Ints) -> Ints:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)."""
    import numpy as np

    year = year - (month <= 2)
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    of_cycle = of_era * 365 + of_era // 4 - of_era // 100 + of_year
    days: Ints = era * 146097 + of_cycle - 719468
    return days
