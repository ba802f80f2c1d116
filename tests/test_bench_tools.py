"""The benchmark tooling's pure parts: medians and the results table, the soak's
exactly-once checker, WebSocket masking, and the pre-filled history's shape."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.delivery import Ack, Stored, Stream, StreamLog, check
from bench.prefill import History, PrefillSpec
from bench.stats import Figure, Measure, Record, comparisons, markdown_table, median, percentile
from bench.workers import _shares
from bench.wsclient import mask

# --- medians, ratios and the table ------------------------------------------------


def test_median_of_odd_and_even_counts_ignores_failed_runs() -> None:
    """The median takes the middle value, or the mean of the middle two, skipping None."""
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, None, 2.0, 3.0]) == 2.5
    assert median([None, None]) is None


def test_percentile_is_nearest_rank() -> None:
    """p50 and p99 of 1..100 are 50 and 99; an empty list has none."""
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) is None


def _session() -> tuple[list[Figure], list[Record]]:
    figure = Figure(
        "fanout-100",
        "chatapp",
        "Node",
        (Measure("max_rate", "max msg/s", "≥ 1.0x Node"), Measure("cpu", "CPU", compare=False)),
    )
    records = [
        Record("fanout-100", "subject", 2, {"max_rate": 1800.0, "cpu": 300.0}),
        Record("fanout-100", "subject", 1, {"max_rate": 1600.0, "cpu": 320.0}),
        Record("fanout-100", "reference", 1, {"max_rate": 3200.0}),
        Record("fanout-100", "reference", 2, {"max_rate": 3600.0}),
        Record("fanout-100", "subject", 3, {}),  # a failed run
        Record("fanout-100", "reference", 3, {"max_rate": 3400.0}),
    ]
    return [figure], records


def test_comparisons_list_runs_in_order_with_medians_and_ratio() -> None:
    """Each measure becomes a row with both sides' runs, their medians and subject/reference."""
    figures, records = _session()
    row = comparisons(figures, records)[0]
    assert row.subject_values == (1600.0, 1800.0, None)
    assert row.reference_values == (3200.0, 3600.0, 3400.0)
    assert row.subject_median == 1700.0
    assert row.reference_median == 3400.0
    assert row.ratio == pytest.approx(0.5)


def test_markdown_table_shows_runs_medians_ratio_and_subject_only_rows() -> None:
    """The table prints every run (n/a for a failed one), bold medians, the ratio and the goal;
    a measure without a reference shows dashes instead of a ratio."""
    figures, records = _session()
    lines = markdown_table(comparisons(figures, records)).splitlines()
    assert lines[0].startswith("| figure | measure |")
    assert lines[2] == (
        "| fanout-100 | max msg/s | chatapp | 1,600, 1,800, n/a | **1,700** | Node "
        "| 3,200, 3,600, 3,400 | 3,400 | 0.50x | ≥ 1.0x Node |"
    )
    assert lines[3] == "| fanout-100 | CPU | chatapp | 320, 300, n/a | **310** | — | — | — | — |  |"


def test_figures_without_records_are_left_out() -> None:
    """A figure that was not run does not appear in the table."""
    figures, _ = _session()
    assert comparisons(figures, []) == []


# --- the soak's exactly-once checker -------------------------------------------------


def _stored(room: str, last: int) -> list[Stored]:
    return [Stored(room, seq, 100 + seq, f"m{seq}") for seq in range(1, last + 1)]


def _stream(seqs: list[int], floor: int = 0, client: str = "c1", room: str = "r") -> Stream:
    log = StreamLog(floor)
    for seq in seqs:
        log.add(seq)
    return log.freeze(client, room)


def test_stream_log_keeps_consecutive_seqs_as_one_run() -> None:
    """A correct stream costs one run whatever its length; last is where to resume."""
    log = StreamLog(10)
    assert log.last == 10
    for seq in range(11, 1000):
        log.add(seq)
    log.add(2000)
    assert log.runs == [[11, 999], [2000, 2000]]
    assert log.last == 2000


def test_complete_streams_and_matching_acks_pass() -> None:
    """Every member saw floor+1..last once, in order, and every ack is stored: no violation."""
    stored = _stored("r", 5)
    acks = [Ack(f"m{seq}", "r", seq, 100 + seq) for seq in range(1, 6)]
    streams = [_stream([1, 2, 3, 4, 5]), _stream([3, 4, 5], floor=2, client="late")]
    report = check(streams, acks, stored, {("r", 3): 103})
    assert report.ok, report.examples
    assert report.deliveries == 8
    assert report.acks == 5


def test_a_missing_message_fails_and_is_named() -> None:
    """A seq the member never got (here 3 of 1..5) is a loss."""
    report = check([_stream([1, 2, 4, 5])], [], _stored("r", 5))
    assert not report.ok
    assert report.missing == 1
    assert "missed 3" in report.examples[0]


def test_a_stream_that_stops_short_of_the_room_misses_the_rest() -> None:
    """A member that never caught up to the newest stored message misses the tail."""
    report = check([_stream([1, 2])], [], _stored("r", 4))
    assert report.missing == 2


def test_a_duplicate_fails() -> None:
    """The same seq twice (a resume that replayed what was seen) is a duplicate."""
    report = check([_stream([1, 2, 3, 3, 4])], [], _stored("r", 4))
    assert (report.duplicates, report.missing, report.out_of_order) == (1, 0, 0)
    assert not report.ok


def test_messages_out_of_order_fail_even_when_none_is_lost() -> None:
    """1, 3, 2, 4 delivers everything once but not in seq order."""
    report = check([_stream([1, 3, 2, 4])], [], _stored("r", 4))
    assert (report.out_of_order, report.missing, report.duplicates) == (1, 0, 0)
    assert not report.ok


def test_a_delivered_message_that_is_not_stored_fails() -> None:
    """Seeing a seq beyond the newest stored one means a message was broadcast but not stored."""
    report = check([_stream([1, 2, 3])], [], _stored("r", 2))
    assert report.phantom == 1
    assert not report.ok


def test_a_member_that_never_got_history_fails() -> None:
    """A client that never managed to join a room of its own counts as a failure."""
    report = check([Stream("c1", "r", None)], [], _stored("r", 1))
    assert report.never_joined == 1
    assert not report.ok


def test_an_acked_message_missing_from_the_database_fails() -> None:
    """An ack is a promise of durability: its (room, seq) must be stored with its client_id."""
    stored = _stored("r", 2)
    report = check([], [Ack("m3", "r", 3, 103)], stored)
    assert report.acked_not_stored == 1
    report = check([], [Ack("other", "r", 2, 102)], stored)
    assert report.ack_mismatch == 1
    assert not report.ok


def test_one_client_id_acked_at_two_places_fails() -> None:
    """A resend must get the original ack; a second position means it was stored twice."""
    stored = [Stored("r", 1, 101, "m1"), Stored("r", 2, 102, "m1")]
    acks = [Ack("m1", "r", 1, 101), Ack("m1", "r", 2, 102), Ack("m1", "r", 1, 101)]
    report = check([], acks, stored)
    assert report.double_acks == 1
    assert not report.ok


def test_a_gap_in_the_stored_seqs_fails() -> None:
    """Stored seqs must be exactly 1..newest in each room."""
    report = check([], [], [Stored("r", 1, 1, None), Stored("r", 3, 3, None)])
    assert report.db_gaps == 1
    assert not report.ok


def test_clients_given_another_message_id_for_a_seq_fail() -> None:
    """What clients were given at (room, seq) must be the stored message."""
    report = check([], [], _stored("r", 2), {("r", 2): 999})
    assert report.wrong_message == 1
    assert not report.ok


# --- WebSocket masking and the pre-filled history ----------------------------------


def test_mask_is_the_rfc_xor_and_its_own_inverse() -> None:
    """Masking XORs each byte with key[i % 4]; masking twice gives the payload back."""
    key, data = b"\x01\x02\x03\x04", "héllo, wörld".encode()
    masked = mask(key, data)
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(data))
    assert mask(key, masked) == data
    assert mask(key, b"") == b""


def test_prefilled_history_is_gapless_per_room_with_unique_client_ids() -> None:
    """Generated rows count each room from 1 without gaps, match the rooms' last_seq,
    give the benchmark room its share, and never repeat (user_id, client_id)."""
    spec = PrefillSpec(messages=5000, rooms=20, room_share=0.3, users=50, seed=3)
    history = History(spec)
    rows = [row for chunk in history.chunks(size=700) for row in chunk]
    assert len(rows) == 5000
    seqs: dict[str, list[int]] = {}
    for room, seq, *_ in rows:
        seqs.setdefault(room, []).append(seq)
    for summary in history.rooms:
        assert seqs.get(summary.name, []) == list(range(1, summary.last_seq + 1))
    assert 0.25 < len(seqs["bench"]) / 5000 < 0.35
    keys = Counter((row[2], row[6]) for row in rows if row[6] is not None)
    assert keys and max(keys.values()) == 1
    assert [row[5] for row in rows] == sorted(row[5] for row in rows)


def test_prefill_spec_key_changes_with_the_spec() -> None:
    """The cache key names one spec (and one schema): another spec gets another file."""
    assert PrefillSpec().key() == PrefillSpec().key()
    assert PrefillSpec(messages=10).key() != PrefillSpec(messages=11).key()


def test_storecost_measures_each_variant_it_names(capsys) -> None:
    """The write-path cost tool appends through the store and reports one row per variant."""
    from bench import storecost

    sizes = ["--batches", "2", "--batch", "20", "--runs", "1"]
    assert storecost.main([*sizes, "--variants", "baseline", "rooms_100"]) == 0
    table = capsys.readouterr().out
    for variant in ("baseline", "rooms_100"):
        assert f"| {variant} |" in table


@pytest.mark.parametrize("n", [1, 200, 14_999, 15_000, 15_001, 25_000, 100_003])
def test_idle_connections_are_shared_so_no_holder_needs_more_files_than_allowed(n) -> None:
    shares = _shares(n, 15_000)
    assert sum(shares) == n
    assert max(shares) <= 15_000
    assert max(shares) - min(shares) <= 1
    assert len(shares) == -(-n // 15_000)
