"""Admission: caps per user, per address and for the server; no counter outlives its users."""

from __future__ import annotations

import pytest

from chatapp.core.admission import Admission
from chatapp.errors import ErrorCode, LimitReached
from chatapp.model import User


class Conn:
    def __init__(self, user_id: str, address: str = "10.0.0.1") -> None:
        self.user = User(user_id, user_id)
        self.address = address

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        pass

    async def finish_requests(self, timeout: float) -> None:
        pass


def refusal(admission: Admission, user_id: str, address: str | None) -> ErrorCode | None:
    try:
        admission.check(user_id, address)
    except LimitReached as exc:
        return exc.code
    return None


def test_each_cap_refuses_one_connection_past_it():
    """Per user and per address: 429's code; the whole server: 503's; 0 means no cap."""
    admission = Admission(per_user=2, per_address=3, total=4)
    for conn in (Conn("a"), Conn("a"), Conn("b")):
        admission.add(conn)
    assert refusal(admission, "a", "10.0.0.9") == ErrorCode.TOO_MANY_CONNECTIONS
    assert refusal(admission, "c", "10.0.0.1") == ErrorCode.TOO_MANY_CONNECTIONS
    assert refusal(admission, "c", None) is None  # loopback: no per-address cap
    admission.add(Conn("c", "10.0.0.2"))
    assert refusal(admission, "d", "10.0.0.3") == ErrorCode.SERVER_FULL
    assert refusal(Admission(), "a", "10.0.0.1") is None


def test_counters_are_forgotten_when_their_last_connection_goes():
    """A server that saw a thousand guests keeps no counter for any of them."""
    admission = Admission(per_user=5, per_address=5)
    guests = [Conn(f"guest:{i}", f"10.0.{i // 250}.{i % 250}") for i in range(1000)]
    for conn in guests:
        admission.add(conn)
    for conn in guests:
        assert admission.remove(conn)
    assert admission.tracked() == 0
    assert not admission.remove(guests[0])


@pytest.mark.parametrize("total", [1, 3])
def test_the_server_cap_counts_open_connections(total):
    """--max-connections: the cap is on connections open now, freed as they close."""
    admission = Admission(total=total)
    conns = [Conn(f"u{i}") for i in range(total)]
    for conn in conns:
        admission.add(conn)
    assert refusal(admission, "late", None) == ErrorCode.SERVER_FULL
    admission.remove(conns[0])
    assert refusal(admission, "late", None) is None
