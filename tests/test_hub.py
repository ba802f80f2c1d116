"""The hub: rooms, race-free joins, fan-out to members, typing and presence.

Members are fakes that record the bytes the hub hands them; the bytes are
decoded as the unmasked WebSocket text frames the hub writes.
"""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import UTC, datetime
from typing import Any

import pytest

from chatapp.auth.tokens import Identity
from chatapp.broker.memory import LocalBroker
from chatapp.core.hub import Hub
from chatapp.core.service import ChatService
from chatapp.errors import StoreError
from chatapp.model import MessageEvent, Page, StoredMessage, TypingEvent, User
from chatapp.ops.metrics import Metrics
from chatapp.web.wsframe import text_frame

#: Longer than the presence coalescing delay for a handful of members.
PRESENCE_WAIT = 0.3

ALICE = User(id="u-alice", name="Alice")
BOB = User(id="u-bob", name="Bob")
CAROL = User(id="u-carol", name="carol")
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def decode_frames(data: bytes) -> list[str]:
    """Split concatenated unmasked, final WebSocket text frames into their payloads."""
    payloads = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert first == 0x81, f"not a final text frame: {first:#x}"
        assert not second & 0x80, "server frames must not be masked"
        size = second & 0x7F
        pos += 2
        if size == 126:
            (size,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif size == 127:
            (size,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        payloads.append(data[pos : pos + size].decode("utf-8"))
        pos += size
    assert pos == len(data), "truncated frame"
    return payloads


class FakeMember:
    """A connection that records everything sent to it."""

    def __init__(self, conn_id: str, user: User, text_mode: bool = False) -> None:
        self.id = conn_id
        self.user = user
        self.text_mode = text_mode
        self.writes: list[bytes] = []

    def send(self, frames: bytes) -> None:
        self.writes.append(frames)

    def payloads(self) -> list[str]:
        return decode_frames(b"".join(self.writes))

    def frames(self, *kinds: str) -> list[dict[str, Any]]:
        """Received JSON frames, optionally only those of the given types."""
        decoded = [json.loads(p) for p in self.payloads()]
        return [f for f in decoded if not kinds or f["type"] in kinds]

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames("message")]


def message(seq: int, origin: str = "c-other", user: User = BOB, room: str = "general"):
    stored = StoredMessage(
        id=seq, room=room, seq=seq, user=user, text=f"text {seq}", created_at=T0, client_id=None
    )
    return MessageEvent(stored, origin)


def joined(hub: Hub, member: FakeMember, room: str = "general", history_seq: int = 0) -> None:
    hub.begin_join(member, room)
    hub.finish_join(member, room, history_seq)


# --- decoder sanity ---------------------------------------------------------


def test_frame_decoder_reads_all_length_forms():
    """The test's decoder handles 7-bit, 16-bit and 64-bit payload lengths."""
    payloads = ["a", "b" * 300, "c" * 70000]
    assert decode_frames(b"".join(text_frame(p) for p in payloads)) == payloads


# --- joining without gap or duplicate ------------------------------------------


async def test_joined_member_receives_live_messages():
    """After finish_join a member gets every message delivered to its room."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    joined(hub, alice)
    hub.deliver([message(1), message(2)])
    assert alice.seqs() == [1, 2]


async def test_events_delivered_while_joining_are_held():
    """Between begin_join and finish_join nothing is sent; events wait in the join buffer."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.deliver([message(1)])
    hub.deliver([message(2), message(3)])
    assert alice.payloads() == []


async def test_finish_join_releases_exactly_the_held_events_newer_than_history():
    """Held messages up to the history's last seq are dropped, the newer ones are sent in order."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.deliver([message(1), message(2)])
    hub.deliver([message(3), message(4)])
    hub.finish_join(alice, "general", history_seq=2)
    assert alice.seqs() == [3, 4]
    hub.deliver([message(5)])
    assert alice.seqs() == [3, 4, 5]


async def test_finish_join_with_history_covering_all_held_events_sends_nothing_extra():
    """If the history already holds every buffered message, none is sent twice."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.deliver([message(1), message(2)])
    hub.finish_join(alice, "general", history_seq=2)
    assert alice.seqs() == []
    hub.deliver([message(3)])
    assert alice.seqs() == [3]


async def test_hub_behind_history_drops_late_events_up_to_the_floor():
    """With history ahead of the hub, later messages up to its last seq are dropped."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.finish_join(alice, "general", history_seq=5)
    hub.deliver([message(4)])
    hub.deliver([message(5), message(6)])
    hub.deliver([message(7)])
    assert alice.seqs() == [6, 7]


async def test_hub_behind_history_with_some_events_held():
    """Held events below the floor are dropped and later ones up to the floor too: no duplicate."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.deliver([message(3)])
    hub.finish_join(alice, "general", history_seq=5)
    assert alice.seqs() == []
    hub.deliver([message(4), message(5), message(6)])
    hub.deliver([message(7)])
    assert alice.seqs() == [6, 7]


async def test_member_below_floor_still_gets_others_typing():
    """While waiting for the hub to catch up, a member already sees the others' typing."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.finish_join(alice, "general", history_seq=5)
    hub.deliver([TypingEvent("general", BOB, "c2")])
    assert alice.frames("typing") == [
        {"type": "typing", "room": "general", "user": {"id": "u-bob", "name": "Bob"}}
    ]


async def test_joins_racing_with_traffic_see_every_message_once():
    """Members joining amid traffic each see history then live messages, gapless, no repeats."""
    hub = Hub()
    members = [FakeMember(f"c{i}", ALICE) for i in range(4)]
    history: dict[FakeMember, int] = {}
    seq = 0
    for member in members:
        hub.begin_join(member, "general")
        seq += 1
        hub.deliver([message(seq)])  # committed while this member's history is read
        history[member] = seq - 1 if member.id in {"c0", "c2"} else seq
        seq += 1
        hub.deliver([message(seq)])
        hub.finish_join(member, "general", history[member])
    for _ in range(2):
        seq += 1
        hub.deliver([message(seq)])
    for member in members:
        assert member.seqs() == list(range(history[member] + 1, seq + 1))


async def test_finish_join_after_leaving_sends_nothing():
    """A member that left while its history was read is not switched to live."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.deliver([message(1)])
    hub.leave(alice, "general")
    hub.finish_join(alice, "general", history_seq=0)
    hub.deliver([message(2)])
    assert alice.payloads() == []
    assert not hub.is_member(alice, "general")


async def test_rejoining_a_room_restarts_the_join_without_duplicates():
    """begin_join on a room already joined holds events again until the new finish_join."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    joined(hub, alice)
    hub.deliver([message(1)])
    hub.begin_join(alice, "general")
    hub.deliver([message(2), message(3)])
    hub.finish_join(alice, "general", history_seq=2)
    hub.deliver([message(4)])
    assert alice.seqs() == [1, 3, 4]


# --- fan-out -----------------------------------------------------------------------


async def test_message_reaches_every_member_including_its_sender():
    """JSON members all get a message, the one who sent it included."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    joined(hub, bob)
    hub.deliver([message(1, origin="c1", user=ALICE)])
    assert alice.seqs() == [1]
    assert bob.seqs() == [1]
    assert alice.frames("message")[0]["user"] == {"id": "u-alice", "name": "Alice"}


async def test_a_delivered_batch_is_one_write_per_member():
    """The frames of one delivery go to each member in a single send."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    joined(hub, alice)
    hub.deliver([message(1), message(2), message(3)])
    assert len(alice.writes) == 1
    assert alice.seqs() == [1, 2, 3]


async def test_events_only_reach_their_own_room():
    """A batch spanning rooms is split: each member gets only its room's events."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice, "a")
    joined(hub, bob, "b")
    hub.deliver([message(1, room="a"), message(1, room="b"), message(2, room="a")])
    assert [(f["room"], f["seq"]) for f in alice.frames("message")] == [("a", 1), ("a", 2)]
    assert [(f["room"], f["seq"]) for f in bob.frames("message")] == [("b", 1)]


async def test_delivery_to_a_room_without_members_is_ignored():
    """Events for a room nobody here joined are dropped quietly."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    joined(hub, alice, "a")
    hub.deliver([message(1, room="elsewhere")])
    assert alice.payloads() == []


async def test_typing_is_not_sent_back_to_its_origin():
    """Typing goes to the other members only, in order with the messages around it."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    joined(hub, bob)
    hub.deliver(
        [
            message(1, origin="c1", user=ALICE),
            TypingEvent("general", ALICE, "c1"),
            message(2, origin="c2"),
        ]
    )
    assert [f["type"] for f in alice.frames()] == ["message", "message"]
    assert [f["type"] for f in bob.frames()] == ["message", "typing", "message"]
    assert bob.frames("typing")[0]["user"] == {"id": "u-alice", "name": "Alice"}


async def test_own_typing_held_during_join_is_not_released_to_origin():
    """Typing events held while joining skip their origin when released, others' are sent."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.deliver([TypingEvent("general", ALICE, "c1"), TypingEvent("general", BOB, "c2")])
    hub.finish_join(alice, "general", history_seq=0)
    assert [f["user"]["id"] for f in alice.frames("typing")] == ["u-bob"]


async def test_text_member_gets_name_colon_text_lines_not_its_own():
    """Plain-text members get 'name: text' lines for others' messages and nothing for their own."""
    hub = Hub()
    reader = FakeMember("t1", CAROL, text_mode=True)
    alice = FakeMember("c1", ALICE)
    joined(hub, reader)
    joined(hub, alice)
    hub.deliver([message(1, origin="c1", user=ALICE), message(2, origin="t1", user=CAROL)])
    assert reader.payloads() == ["Alice: text 1"]
    assert alice.seqs() == [1, 2]


async def test_text_member_gets_no_typing_or_json():
    """Typing notices are not shown to plain-text members."""
    hub = Hub()
    reader = FakeMember("t1", CAROL, text_mode=True)
    joined(hub, reader)
    hub.deliver([TypingEvent("general", BOB, "c2")])
    assert reader.payloads() == []


async def test_text_member_joining_gets_held_lines_except_its_own():
    """A joining text member gets held messages newer than history as lines, minus its own."""
    hub = Hub()
    reader = FakeMember("t1", CAROL, text_mode=True)
    hub.begin_join(reader, "general")
    hub.deliver(
        [
            message(1),
            message(2),
            message(3, origin="t1", user=CAROL),
            TypingEvent("general", BOB, "c2"),
            message(4),
        ]
    )
    hub.finish_join(reader, "general", history_seq=1)
    assert reader.payloads() == ["Bob: text 2", "Bob: text 4"]


# --- membership -----------------------------------------------------------------------


async def test_leave_returns_true_only_when_the_room_empties():
    """leave reports whether the last local member of the room is gone."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    joined(hub, bob)
    assert hub.leave(alice, "general") is False
    assert hub.leave(bob, "general") is True


async def test_leave_counts_a_member_still_joining():
    """A member in the middle of joining keeps the room alive."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    hub.begin_join(bob, "general")
    assert hub.leave(alice, "general") is False
    assert hub.leave(bob, "general") is True


async def test_leave_of_an_unknown_room_returns_true():
    """Leaving a room the hub does not know is harmless and reports it empty."""
    assert Hub().leave(FakeMember("c1", ALICE), "nowhere") is True


async def test_member_gets_nothing_after_leaving():
    """After leave, the room's events no longer reach the member, and it is not a member."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    joined(hub, bob)
    hub.leave(alice, "general")
    hub.deliver([message(1)])
    assert alice.seqs() == []
    assert bob.seqs() == [1]
    assert not hub.is_member(alice, "general")


async def test_membership_is_tracked_per_room():
    """is_member and rooms_of reflect joins (from begin_join on) and leaves."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "a")
    assert hub.is_member(alice, "a")
    joined(hub, alice, "b")
    assert hub.rooms_of(alice) == {"a", "b"}
    hub.leave(alice, "a")
    assert hub.rooms_of(alice) == {"b"}
    assert not hub.is_member(alice, "a")


# --- presence ---------------------------------------------------------------------------


async def test_presence_frame_is_sent_after_a_join():
    """Shortly after joins, members get one coalesced presence frame listing everyone."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    joined(hub, bob)
    await asyncio.sleep(PRESENCE_WAIT)
    expected = {
        "type": "presence",
        "room": "general",
        "users": [{"id": "u-alice", "name": "Alice"}, {"id": "u-bob", "name": "Bob"}],
        "count": 2,
    }
    assert alice.frames("presence") == [expected]
    assert bob.frames("presence") == [expected]


async def test_presence_after_leave_omits_the_leaver():
    """When a member leaves, the others get a presence frame without it."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    joined(hub, bob)
    await asyncio.sleep(PRESENCE_WAIT)
    hub.leave(bob, "general")
    await asyncio.sleep(PRESENCE_WAIT)
    latest = alice.frames("presence")[-1]
    assert latest["users"] == [{"id": "u-alice", "name": "Alice"}]
    assert latest["count"] == 1
    assert len(bob.frames("presence")) == 1


async def test_presence_lists_each_user_once_sorted_by_name():
    """Two connections of one user count once; users are sorted by name, case-insensitively."""
    hub = Hub()
    members = [
        FakeMember("c1", CAROL),
        FakeMember("c2", BOB),
        FakeMember("c3", ALICE),
        FakeMember("c4", ALICE),
    ]
    for member in members:
        joined(hub, member)
    assert hub.presence("general") == [ALICE, BOB, CAROL]
    await asyncio.sleep(PRESENCE_WAIT)
    frame = members[0].frames("presence")[-1]
    assert [u["name"] for u in frame["users"]] == ["Alice", "Bob", "carol"]
    assert frame["count"] == 3


async def test_presence_is_not_sent_to_text_members_but_lists_them():
    """Plain-text members get no presence frames, yet appear in the others' lists."""
    hub = Hub()
    reader = FakeMember("t1", CAROL, text_mode=True)
    alice = FakeMember("c1", ALICE)
    joined(hub, reader)
    joined(hub, alice)
    await asyncio.sleep(PRESENCE_WAIT)
    assert reader.payloads() == []
    assert [u["id"] for u in alice.frames("presence")[-1]["users"]] == ["u-alice", "u-carol"]


async def test_member_still_joining_is_neither_listed_nor_sent_presence():
    """Until finish_join a member is not in presence and gets no presence frame."""
    hub = Hub()
    alice, bob = FakeMember("c1", ALICE), FakeMember("c2", BOB)
    joined(hub, alice)
    hub.begin_join(bob, "general")
    await asyncio.sleep(PRESENCE_WAIT)
    assert bob.payloads() == []
    assert hub.presence("general") == [ALICE]
    assert [u["id"] for u in alice.frames("presence")[-1]["users"]] == ["u-alice"]


async def test_presence_of_an_unknown_room_is_empty():
    """A room with no local members has nobody present."""
    assert Hub().presence("nowhere") == []


# --- joining through the service ----------------------------------------------------


class UnreadableStore:
    """A store whose history reads fail, as during a database outage."""

    description = "unreadable"

    async def latest(self, room: str, limit: int) -> Page:
        raise StoreError("database did not answer")

    async def after(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        raise StoreError("database did not answer")


class FakeConnection(FakeMember):
    """A member as the service sees it: with an identity and a close method."""

    def __init__(self, conn_id: str, user: User) -> None:
        super().__init__(conn_id, user)
        self.identity = Identity(user)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        pass


@pytest.mark.parametrize("since", [None, 5])
async def test_failed_join_leaves_no_half_joined_member_in_the_hub(since):
    """A join whose history read fails is undone: no membership, no events held for it."""
    hub = Hub()
    service = ChatService(UnreadableStore(), hub, LocalBroker(hub.deliver), Metrics())  # type: ignore[arg-type]
    alice = FakeConnection("c1", ALICE)
    with pytest.raises(StoreError):
        await service.join(alice, "general", since=since)
    assert not hub.is_member(alice, "general")
    assert hub.rooms_of(alice) == set()
