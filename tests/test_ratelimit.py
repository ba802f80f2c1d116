"""The per-connection token bucket, driven by a fake clock."""

from __future__ import annotations

from chatapp.web.ratelimit import TokenBucket


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def taken(bucket: TokenBucket, attempts: int) -> int:
    """How many of ``attempts`` back-to-back frames the bucket lets through."""
    return sum(bucket.allow() for _ in range(attempts))


def test_full_burst_is_allowed_at_once():
    """A fresh bucket lets ``burst`` frames through with no time passing."""
    bucket = TokenBucket(rate=5, burst=20, clock=FakeClock())
    assert taken(bucket, 20) == 20


def test_frame_after_the_burst_is_refused():
    """Once the burst is spent and no time has passed, the next frame is refused."""
    bucket = TokenBucket(rate=5, burst=20, clock=FakeClock())
    taken(bucket, 20)
    assert bucket.allow() is False
    assert bucket.allow() is False


def test_tokens_refill_at_the_rate():
    """After the burst is spent, one second at rate 5 allows exactly 5 more frames."""
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=20, clock=clock)
    taken(bucket, 20)
    clock.advance(1.0)
    assert taken(bucket, 10) == 5


def test_partial_tokens_accumulate_until_a_whole_one():
    """Refill is continuous: half a token is not enough, the second half completes it."""
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=1, clock=clock)
    assert bucket.allow() is True
    clock.advance(0.25)
    assert bucket.allow() is False
    clock.advance(0.25)
    assert bucket.allow() is True
    assert bucket.allow() is False


def test_refill_is_capped_at_the_burst():
    """A long idle time refills only up to ``burst``, not beyond."""
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=20, clock=clock)
    taken(bucket, 20)
    clock.advance(3600)
    assert taken(bucket, 50) == 20


def test_idle_fresh_bucket_does_not_exceed_burst():
    """A bucket that waited before its first frame still allows only ``burst``."""
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    clock.advance(60)
    assert taken(bucket, 10) == 3


def test_refused_frames_do_not_consume_tokens():
    """Refused attempts cost nothing: the refill after them is whole."""
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    taken(bucket, 2)
    assert taken(bucket, 100) == 0
    clock.advance(2.0)
    assert taken(bucket, 5) == 2


def test_steady_traffic_at_the_rate_is_never_refused():
    """A sender that keeps exactly to the rate is allowed every frame, indefinitely."""
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    allowed = []
    for _ in range(100):
        allowed.append(bucket.allow())
        clock.advance(0.25)
    assert all(allowed)
