"""Exactly-once, in-order delivery: what each client saw, checked against acks and the database.

A soak client records, per room, the ``seq`` of every message it accepted,
in the order it accepted them (live, in a join's history, or on resume with
``since``), starting from its *floor*: the seq just before the first message
of its first history page (0 when that page was empty). Because it always
resumes with ``since`` = the last seq it accepted, a correct server gives it
exactly ``floor + 1 .. last`` once each, in order, where ``last`` is the
room's newest stored seq once the run has settled.

``check`` compares those streams, the acks the senders got, and the rows
in the database, and counts every way that can fail. Pure: no I/O.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Problems quoted in a report, at most.
EXAMPLES = 20


class StreamLog:
    """The seqs one client accepted in one room, in order, as runs of consecutive seqs.

    A correct stream is one run whatever its length, so thousands of clients
    cost little memory.
    """

    __slots__ = ("floor", "runs")

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.runs: list[list[int]] = []

    def add(self, seq: int) -> None:
        if self.runs and seq == self.runs[-1][1] + 1:
            self.runs[-1][1] = seq
        else:
            self.runs.append([seq, seq])

    @property
    def last(self) -> int:
        """The seq to resume after: the last one accepted, or the floor."""
        return self.runs[-1][1] if self.runs else self.floor

    def freeze(self, client: str, room: str) -> Stream:
        return Stream(client, room, self.floor, tuple((a, b) for a, b in self.runs))


@dataclass(frozen=True)
class Stream:
    """One client's accepted seqs in one room; ``floor`` None: it never got a history page."""

    client: str
    room: str
    floor: int | None
    runs: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Ack:
    """An ``ack`` a sender received: its message is stored at (room, seq) with this id."""

    client_id: str
    room: str
    seq: int
    message_id: int


@dataclass(frozen=True)
class Stored:
    """A row of ``messages`` after the run."""

    room: str
    seq: int
    message_id: int
    client_id: str | None


@dataclass
class Report:
    """Counts of every violation; ``ok`` when all are zero."""

    streams: int = 0
    deliveries: int = 0
    stored: int = 0
    acks: int = 0
    missing: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    phantom: int = 0
    never_joined: int = 0
    acked_not_stored: int = 0
    ack_mismatch: int = 0
    double_acks: int = 0
    db_gaps: int = 0
    wrong_message: int = 0
    examples: list[str] = field(default_factory=list)

    VIOLATIONS = (
        "missing",
        "duplicates",
        "out_of_order",
        "phantom",
        "never_joined",
        "acked_not_stored",
        "ack_mismatch",
        "double_acks",
        "db_gaps",
        "wrong_message",
    )

    @property
    def ok(self) -> bool:
        return not any(getattr(self, name) for name in self.VIOLATIONS)

    def note(self, text: str) -> None:
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)

    def counts(self) -> dict[str, int]:
        names = ("streams", "deliveries", "stored", "acks", *self.VIOLATIONS)
        return {name: getattr(self, name) for name in names}


def check(
    streams: Iterable[Stream],
    acks: Iterable[Ack],
    stored: Iterable[Stored],
    delivered: Mapping[tuple[str, int], int] | None = None,
) -> Report:
    """Every violation of exactly-once, in-order delivery of stored messages.

    ``delivered`` maps (room, seq) to the message id clients were given for
    it; it must be the id stored there.
    """
    report = Report()
    rows = {(s.room, s.seq): s for s in stored}
    report.stored = len(rows)
    last = _check_rooms(rows, report)
    _check_acks(list(acks), rows, report)
    for stream in streams:
        report.streams += 1
        _check_stream(stream, last.get(stream.room, 0), report)
    for key, message_id in (delivered or {}).items():
        row = rows.get(key)
        if row is not None and row.message_id != message_id:
            report.wrong_message += 1
            report.note(f"{key[0]}#{key[1]}: delivered id {message_id}, stored {row.message_id}")
    return report


def _check_rooms(rows: Mapping[tuple[str, int], Stored], report: Report) -> dict[str, int]:
    """Each room's newest seq; counts rooms whose seqs are not exactly 1..newest."""
    seqs: dict[str, list[int]] = {}
    for room, seq in rows:
        seqs.setdefault(room, []).append(seq)
    last = {}
    for room, numbers in seqs.items():
        last[room] = max(numbers)
        if min(numbers) != 1 or len(numbers) != last[room]:
            report.db_gaps += 1
            report.note(f"{room}: stored seqs are not 1..{last[room]} ({len(numbers)} rows)")
    return last


def _check_acks(acks: list[Ack], rows: Mapping[tuple[str, int], Stored], report: Report) -> None:
    positions: dict[str, set[tuple[str, int, int]]] = {}
    for ack in acks:
        positions.setdefault(ack.client_id, set()).add((ack.room, ack.seq, ack.message_id))
    report.acks = len(positions)
    for client_id, places in positions.items():
        if len(places) > 1:
            report.double_acks += 1
            report.note(f"{client_id} acked at {sorted(places)}: stored twice")
        for room, seq, message_id in places:
            row = rows.get((room, seq))
            if row is None:
                report.acked_not_stored += 1
                report.note(f"{client_id} acked as {room}#{seq} but not stored")
            elif row.client_id != client_id or row.message_id != message_id:
                report.ack_mismatch += 1
                report.note(f"{client_id} acked as {room}#{seq} id {message_id}, stored {row}")


def _check_stream(stream: Stream, last: int, report: Report) -> None:
    where = f"{stream.client} in {stream.room}"
    if stream.floor is None:
        report.never_joined += 1
        report.note(f"{where}: never got history")
        return
    floor, runs = stream.floor, stream.runs
    report.deliveries += sum(b - a + 1 for a, b in runs)
    if (len(runs) == 1 and runs[0] == (floor + 1, last)) or (not runs and floor == last):
        return  # the usual case: exactly floor+1..last, once, in order
    for (_, previous_end), (start, _) in itertools.pairwise(runs):
        if start < previous_end:
            report.out_of_order += 1
            report.note(f"{where}: {start} after {previous_end}")
    seen: Counter[int] = Counter()
    for a, b in runs:
        seen.update(range(a, b + 1))
    missing = [seq for seq in range(floor + 1, last + 1) if not seen[seq]]
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    phantom = [seq for seq in seen if seq > last]
    report.missing += len(missing)
    report.duplicates += duplicates
    report.phantom += len(phantom)
    if missing:
        report.note(f"{where}: missed {_ranges(missing)}")
    if duplicates:
        twice = sorted(seq for seq, n in seen.items() if n > 1)
        report.note(f"{where}: {duplicates} duplicate(s) of {_ranges(twice)}")
    if phantom:
        report.note(f"{where}: got {_ranges(sorted(phantom))}, never stored")


def _ranges(seqs: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7`` (at most 5 ranges)."""
    parts: list[str] = []
    start = previous = seqs[0]
    for seq in [*seqs[1:], None]:
        if seq is not None and seq == previous + 1:
            previous = seq
            continue
        parts.append(f"{start}-{previous}" if previous != start else str(start))
        if seq is not None:
            start = previous = seq
    return ", ".join(parts[:5]) + (" ..." if len(parts) > 5 else "")
