"""A per-minute counter on scenario time: sliding (last `window_s` seconds) or fixed
(calendar windows of `window_s` starting at scenario time 0).

Charges are entries that can be corrected later (Bedrock reserves input + maxTokens at
request start and corrects the charge at the end); a correction changes the entry in
place, so it stays in the window of its start time.
"""

from __future__ import annotations

from collections import deque


class Charge:
    """One charge in a window (mutable so the end-of-request correction can amend it)."""

    __slots__ = ("t", "amount", "live")

    def __init__(self, t: float, amount: float) -> None:
        self.t = t
        self.amount = amount
        self.live = True  # still counted in the window's total


class Window:
    def __init__(self, window_s: float = 60.0, kind: str = "sliding") -> None:
        self.window_s = window_s
        self.kind = kind
        self._entries: deque[Charge] = deque()
        self._total = 0.0
        self._fixed_index = 0

    def _expire(self, now: float) -> None:
        if self.kind == "fixed":
            idx = int(now // self.window_s)
            if idx != self._fixed_index:
                self._fixed_index = idx
                for e in self._entries:
                    e.live = False
                self._entries.clear()
                self._total = 0.0
            return
        cutoff = now - self.window_s
        entries = self._entries
        while entries and entries[0].t <= cutoff:
            e = entries.popleft()
            e.live = False
            self._total -= e.amount

    def total(self, now: float) -> float:
        """Sum of live charges at scenario time `now`."""
        self._expire(now)
        return self._total

    def add(self, now: float, amount: float) -> Charge:
        self._expire(now)
        c = Charge(now, amount)
        self._entries.append(c)
        self._total += amount
        return c

    def correct(self, charge: Charge, amount: float) -> None:
        """Set a charge's amount; no effect on the total once it left the window."""
        if charge.live:
            self._total += amount - charge.amount
        charge.amount = amount


class Windows:
    """One Window per key (a model id and a Region), made on first use, all of one length
    (`window_s` scenario seconds) and kind."""

    def __init__(self, window_s: float, kind: str) -> None:
        self.window_s = window_s
        self.kind = kind
        self._by_key: dict[tuple, Window] = {}

    def __getitem__(self, key: tuple) -> Window:
        w = self._by_key.get(key)
        if w is None:
            w = self._by_key[key] = Window(self.window_s, self.kind)
        return w

    def get(self, key: tuple) -> Window | None:
        """The key's window, or None if none was made yet."""
        return self._by_key.get(key)
