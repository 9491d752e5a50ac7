"""One target's minute counts over the ledger's window (33 days by default), held small.

The last two days, where results land, are one dense array: adding a result is an index into it, and a
read within it is a view. Older days are closed: each is kept as zlib-compressed bytes (a day of minutes
at a steady rate compresses to a few percent) and read back on demand, which the engine rarely does (its
day cache holds closed days' counts). A write into a closed day (a late result after a clock jump back,
the history restored at start) thaws it; at most a few stay thawed, and compaction freezes them again.
"""
from __future__ import annotations

import zlib

import numpy as np

DTYPE = np.uint16
DAY_MIN = 1440
HOT_DAYS = 2
MAX_THAWED = 2
LEVEL = 1  # zlib level: 6 saves a few hundred bytes a day at four times the cost
# The last frozen days decompressed, whichever targets': a window read again (a week for the quantiles'
# population, the hours of one day written again in a row after the database was lost) decompresses each
# day once. Keyed by the bytes object itself (kept alive in the entry), so a day frozen again is never
# read from an older copy; a few days' rows is all it holds, for the whole ledger.
_READ: dict[int, tuple[bytes, np.ndarray]] = {}
READ_DAYS = 8


class MinuteStore:
    """Rows of epoch minutes [base, base + capacity); `base` is hour aligned and moves by whole days."""

    def __init__(self, nf: int, capacity: int, base: int = -1) -> None:
        self.nf, self.capacity = nf, capacity
        self.hot_rows = min(capacity, HOT_DAYS * DAY_MIN)
        self.hot = np.zeros((self.hot_rows, nf), dtype=DTYPE)
        # closed day's first minute -> its rows, compressed (frozen) or an array being written to (thawed):
        # one dict, changed by one assignment, so that an evaluation reading in its thread finds every day
        self.closed: dict[int, bytes | np.ndarray] = {}
        self._thawed: list[int] = []  # the thawed days, oldest first (at most MAX_THAWED)
        self.base = base

    @property
    def base(self) -> int:
        return self._base

    @base.setter
    def base(self, value: int) -> None:
        self._base = value
        # a plain attribute, read by every add(); before the first sample no minute falls in the dense days
        self.hot_base = value + self.capacity - self.hot_rows if value >= 0 else -(1 << 62)
    # -- writing ------------------------------------------------------------------------------------
    def row(self, minute: int) -> np.ndarray | None:
        """The minute's writable row; None when it lies before the window. A minute past the window
        moves it forward by whole days."""
        i = minute - self.hot_base
        if 0 <= i < self.hot_rows:
            return self.hot[i]
        if i >= self.hot_rows:
            self._advance(minute)
            return self.hot[minute - self.hot_base]
        if minute < self.base:
            return None
        day = self._day(minute)
        return self._thaw(day)[minute - day]

    def write(self, m0: int, rows: np.ndarray) -> bool:
        """Rows for [m0, m0 + len(rows)) within one hour; False when they lie before the window."""
        if m0 + len(rows) - 1 - self.hot_base >= self.hot_rows:
            self._advance(m0 + len(rows) - 1)
        if m0 < self.base:
            return False
        i = m0 - self.hot_base
        if i >= 0:
            self.hot[i:i + len(rows)] = rows
        else:
            day = self._day(m0)
            self._thaw(day)[m0 - day:m0 - day + len(rows)] = rows
        return True

    def _day(self, minute: int) -> int:
        return self.base + (minute - self.base) // DAY_MIN * DAY_MIN

    def _thaw(self, day: int) -> np.ndarray:
        held = self.closed.get(day)
        if isinstance(held, np.ndarray):
            return held
        block = self.closed[day] = self._rows(held).copy()
        self._thawed.append(day)
        while len(self._thawed) > MAX_THAWED:  # restore writes day after day: keep it small as it goes
            self._freeze_one(self._thawed[0])
        return block

    def _advance(self, minute: int) -> None:
        """Moves the window so that `minute` is in its last day; the days leaving the dense part close."""
        shift = ((minute - self.hot_base - self.hot_rows) // DAY_MIN + 1) * DAY_MIN
        old_hot_base = self.hot_base
        closing = min(shift, self.hot_rows)
        for k in range(0, closing, DAY_MIN):
            rows = self.hot[k:k + DAY_MIN]
            if rows.any():
                self.closed[old_hot_base + k] = zlib.compress(rows.tobytes(), LEVEL)
        if shift >= self.hot_rows:
            self.hot[:] = 0
        else:
            self.hot[:-shift] = self.hot[shift:]
            self.hot[-shift:] = 0
        self.base = self.base + shift
        for day in [d for d in list(self.closed) if d < self.base]:
            del self.closed[day]
        self._thawed = [d for d in self._thawed if d >= self.base]

    def freeze(self) -> None:
        """Every thawed day closes again (compaction calls this)."""
        while self._thawed:
            self._freeze_one(self._thawed[0])

    def _freeze_one(self, day: int) -> None:
        self._thawed.remove(day)
        block = self.closed.get(day)
        if not isinstance(block, np.ndarray):
            return
        if block.any():
            self.closed[day] = zlib.compress(block.tobytes(), LEVEL)
        else:
            del self.closed[day]

    # -- reading ------------------------------------------------------------------------------------
    def _rows(self, held: bytes | np.ndarray | None) -> np.ndarray:
        """A closed day's rows, from what `closed` holds for it (a thawed array is the live one)."""
        if held is None:
            return np.zeros((DAY_MIN, self.nf), dtype=DTYPE)
        if isinstance(held, np.ndarray):
            return held
        hit = _READ.get(id(held))
        if hit is not None and hit[0] is held:
            return hit[1]
        rows = np.frombuffer(zlib.decompress(held), dtype=DTYPE).reshape(DAY_MIN, self.nf)
        try:
            while len(_READ) >= READ_DAYS:
                _READ.pop(next(iter(_READ)))
        except (RuntimeError, KeyError, StopIteration):  # the other thread was at it too
            _READ.clear()
        _READ[id(held)] = (held, rows)
        return rows

    def block(self, m0: int, m1: int) -> np.ndarray:
        """Rows [m0, m1): a read-only view when they lie in the dense days, else a copy (zeros outside
        the window)."""
        hb = self.hot_base
        if self.base >= 0 and hb <= m0 <= m1 <= hb + self.hot_rows:
            view = self.hot[m0 - hb:m1 - hb]
            view.flags.writeable = False
            return view
        out = np.zeros((max(0, m1 - m0), self.nf), dtype=DTYPE)
        if self.base < 0 or m1 <= m0:
            return out
        a, b = max(m0, self.base), min(m1, self.base + self.capacity)
        t = a
        while t < b:
            if t >= hb:
                out[t - m0:b - m0] = self.hot[t - hb:b - hb]
                break
            day = self._day(t)
            end = min(b, day + DAY_MIN)
            held = self.closed.get(day)
            if held is not None:
                out[t - m0:end - m0] = self._rows(held)[t - day:end - day]
            t = end
        return out

    def hours_with_data(self) -> list[int]:
        """Epoch hours holding any count (to write everything again after the database was lost)."""
        if self.base < 0:
            return []
        hours = []
        for day, held in sorted(self.closed.items()):
            hours += [day // 60 + int(h) for h in np.flatnonzero(self._rows(held).reshape(-1, 60, self.nf).any(
                axis=(1, 2)))]
        hot = self.hot.reshape(-1, 60, self.nf).any(axis=(1, 2))
        return hours + [self.hot_base // 60 + int(h) for h in np.flatnonzero(hot)]

    @property
    def nbytes(self) -> int:
        return self.hot.nbytes + sum(len(b) if isinstance(b, bytes) else b.nbytes for b in self.closed.values())
