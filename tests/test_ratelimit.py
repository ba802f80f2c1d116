"""Token buckets per connection and per address, driven by a fake clock."""

from __future__ import annotations

from chatapp.web.ratelimit import AddressLimits, TokenBucket


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


def test_each_address_has_its_own_bucket_and_is_told_when_to_come_back():
    """Past its burst an address is refused with the seconds until its next token; another
    address is not affected."""
    clock = FakeClock()
    limits = AddressLimits(rate=2, burst=3, clock=clock)
    assert [limits.take("10.0.0.1") for _ in range(3)] == [None, None, None]
    assert limits.take("10.0.0.1") == 0.5
    assert limits.take("10.0.0.2") is None
    clock.advance(0.5)
    assert limits.take("10.0.0.1") is None


def test_addresses_whose_buckets_refilled_are_forgotten():
    """A stream of one-off addresses does not grow the table without end."""
    clock = FakeClock()
    limits = AddressLimits(rate=1, burst=1, clock=clock)
    for i in range(AddressLimits.SWEEP_AT):
        limits.take(f"10.1.{i // 256}.{i % 256}")
    clock.advance(2)
    limits.take("10.9.9.9")
    assert len(limits) == 1


def test_a_rate_of_zero_turns_the_limit_off():
    """With rate 0 every request goes through."""
    limits = AddressLimits(rate=0, burst=1)
    assert all(limits.take("10.0.0.1") is None for _ in range(100))
