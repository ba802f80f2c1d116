"""Token buckets: per connection (frames), and per client address (HTTP requests)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next token (0 when one is there)."""
        return max(0.0, (1.0 - self._tokens) / self._rate) if self._rate else 0.0

    def full(self) -> bool:
        """Whether the bucket has refilled completely (so forgetting it changes nothing)."""
        return self._tokens + (self._clock() - self._last) * self._rate >= self._burst


class AddressLimits:
    """A token bucket per client address, for one kind of HTTP request.

    Buckets that have refilled are forgotten once there are many, so a
    stream of one-off addresses never grows the table without end.
    """

    #: Buckets kept before full (idle) ones are swept out.
    SWEEP_AT = 10_000

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, address: str) -> float | None:
        """None when ``address`` may go on; else the seconds until it may try again."""
        if not self._rate:
            return None
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.SWEEP_AT:
                self._buckets = {a: b for a, b in self._buckets.items() if not b.full()}
            bucket = self._buckets[address] = TokenBucket(self._rate, self._burst, self._clock)
        return None if bucket.allow() else bucket.wait()

    def __len__(self) -> int:
        return len(self._buckets)
