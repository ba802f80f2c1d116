"""The hub: rooms and members, seq order without gaps, fan-out, falling behind, presence.

Members are fakes that record the deliveries the hub hands them, and can be
made to refuse (a full backlog).
"""

from __future__ import annotations

import asyncio

from factories import ALICE, BOB, CAROL, PATIENCE, event, eventually

from chatapp.core.hub import GAP_HOLD, PRESENCE_MAX_USERS, TYPING_INTERVAL, Delivery, Hub
from chatapp.model import MessageEvent, PresenceEvent, TypingEvent, User


class FakeMember:
    """A connection that records what it is handed; ``full`` makes it refuse."""

    def __init__(self, conn_id: str, user: User) -> None:
        self.id = conn_id
        self.user = user
        self.deliveries: list[Delivery] = []
        self.full = False

    def push(self, delivery: Delivery) -> bool:
        if self.full:
            return False
        self.deliveries.append(delivery)
        return True

    def seqs(self) -> list[int]:
        return [
            e.message.seq for d in self.deliveries for e in d.events if isinstance(e, MessageEvent)
        ]

    def of(self, kind: type) -> list:
        return [e for d in self.deliveries for e in d.events if isinstance(e, kind)]


def live(hub: Hub, member: FakeMember, room: str = "general", head: int = 0) -> None:
    """Join ``member`` with history up to ``head`` (the room's head when it is new here)."""
    hub.begin_join(member, room)
    hub.set_head(room, head)
    assert hub.caught_up(member, room, head)


# --- order ---------------------------------------------------------------------


async def test_a_live_member_gets_messages_in_seq_order():
    """Messages reach a live member in the order of their seqs."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice)
    hub.deliver([event(1), event(2)])
    hub.deliver([event(3)])
    assert alice.seqs() == [1, 2, 3]


async def test_a_message_delivered_twice_reaches_members_once():
    """A republished or refetched message (seq already delivered) is dropped."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice)
    hub.deliver([event(1), event(2)])
    hub.deliver([event(2), event(1)])
    assert alice.seqs() == [1, 2]


async def test_messages_arriving_out_of_order_are_held_until_the_gap_fills():
    """A message after a gap waits; once the missing one arrives, both go out in order."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice)
    hub.deliver([event(1), event(3), event(4)])
    assert alice.seqs() == [1]
    hub.deliver([event(2)])
    assert alice.seqs() == [1, 2, 3, 4]


async def test_a_gap_that_stays_open_is_asked_for_from_the_store():
    """After GAP_HOLD, ``on_gap`` names the room and the last seq delivered; filling it
    delivers everything in order."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    gaps: list[tuple[str, int]] = []
    hub.on_gap = lambda room, after: gaps.append((room, after))
    live(hub, alice)
    hub.deliver([event(1), event(4)])
    assert gaps == []  # held for GAP_HOLD first
    await eventually(lambda: gaps, "the gap asked for", GAP_HOLD + PATIENCE)
    assert gaps == [("general", 1)]
    hub.gap_filled("general", [MessageEvent(m.message, "") for m in (event(2), event(3))])
    assert alice.seqs() == [1, 2, 3, 4]


async def test_filling_a_gap_that_retention_deleted_resumes_after_it():
    """If the missing messages are gone from the store, delivery continues with what is."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice, head=10)
    hub.deliver([event(14)])
    hub.gap_filled("general", [event(13, origin="")])
    assert alice.seqs() == [13, 14]


async def test_messages_before_the_room_head_is_known_are_held_then_filtered_by_it():
    """Until ``set_head``, a new room's messages wait; those at or below the head are
    dropped (the joiner reads them from the store), later ones are delivered."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.deliver([event(5), event(6), event(7)])
    hub.set_head("general", 6)
    assert hub.last_seq("general") == 7
    assert hub.caught_up(alice, "general", 7)
    hub.deliver([event(8)])
    assert alice.seqs() == [8]


async def test_typing_is_not_held_behind_a_gap():
    """Typing notices carry no seq: they go out at once even while messages wait."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice)
    hub.deliver([event(2), TypingEvent("general", BOB, "c9")])
    assert alice.seqs() == [] and len(alice.of(TypingEvent)) == 1


# --- joining ---------------------------------------------------------------------


async def test_a_joining_member_gets_nothing_live():
    """Between begin_join and caught_up the hub sends nothing: history comes from the store."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.set_head("general", 0)
    hub.deliver([event(1), event(2)])
    assert alice.deliveries == []


async def test_caught_up_is_false_while_the_hub_delivered_more_than_was_sent():
    """A joiner whose history ends before the hub's newest seq must be sent more first."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.set_head("general", 0)
    hub.deliver([event(1), event(2), event(3)])
    assert not hub.caught_up(alice, "general", 2)
    assert hub.caught_up(alice, "general", 3)
    hub.deliver([event(4)])
    assert alice.seqs() == [4]


async def test_a_joiner_whose_history_reaches_past_the_hub_skips_what_it_has():
    """History read after a commit but before its broadcast: the broadcast is not repeated."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.set_head("general", 0)
    assert hub.caught_up(alice, "general", 2)  # its history had seq 1 and 2 already
    hub.deliver([event(1), event(2), event(3)])
    assert alice.seqs() == [3]


async def test_a_member_that_leaves_while_joining_is_done():
    """caught_up for a member no longer joining says there is nothing more to send."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    hub.begin_join(alice, "general")
    hub.leave(alice, "general")
    assert hub.caught_up(alice, "general", 0)
    assert not hub.is_member(alice, "general")


async def test_joining_again_starts_over_without_duplicates():
    """A member that joins a room it is in is sent history again, then only later seqs."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice)
    hub.deliver([event(1)])
    hub.begin_join(alice, "general")
    hub.deliver([event(2)])
    assert hub.caught_up(alice, "general", 2)
    hub.deliver([event(3)])
    assert alice.seqs() == [1, 3]


# --- fan-out -----------------------------------------------------------------------


async def test_one_delivery_object_serves_every_live_member():
    """Members share the delivery (and so its encodings): one per room per broadcast."""
    hub = Hub()
    members = [FakeMember(f"c{i}", ALICE) for i in range(3)]
    for member in members:
        live(hub, member)
    hub.deliver([event(1), event(2)])
    [first] = members[0].deliveries[-1:]
    assert all(m.deliveries[-1] is first for m in members)


async def test_events_only_reach_their_own_room():
    """A member of one room gets nothing of another."""
    hub, alice, bob = Hub(), FakeMember("c1", ALICE), FakeMember("c2", BOB)
    live(hub, alice, "a")
    live(hub, bob, "b")
    hub.deliver([event(1, room="a"), event(1, room="b"), event(2, room="a")])
    assert (alice.seqs(), bob.seqs()) == ([1, 2], [1])


async def test_delivery_to_a_room_without_members_is_ignored():
    """Nobody here: nothing happens, nothing is kept."""
    hub = Hub()
    hub.deliver([event(1, room="empty")])
    assert hub.active_rooms() == {}


# --- falling behind ------------------------------------------------------------------


async def test_a_member_whose_backlog_is_full_falls_behind_and_others_go_on():
    """A refused push takes the member out of live delivery, remembering its cursor."""
    hub, alice, bob = Hub(), FakeMember("c1", ALICE), FakeMember("c2", BOB)
    live(hub, alice)
    live(hub, bob)
    hub.deliver([event(1)])
    alice.full = True
    hub.deliver([event(2), event(3)])
    alice.full = False
    hub.deliver([event(4)])
    assert alice.seqs() == [1]
    assert bob.seqs() == [1, 2, 3, 4]
    assert hub.behind(alice) == {"general": 1}


async def test_a_member_behind_is_live_again_once_it_has_caught_up():
    """caught_up with the hub's newest seq puts a lagging member back into live delivery."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice)
    alice.full = True
    hub.deliver([event(1), event(2)])
    alice.full = False
    assert not hub.caught_up(alice, "general", 1)
    assert hub.caught_up(alice, "general", 2)
    hub.deliver([event(3)])
    assert alice.seqs() == [3]
    assert hub.behind(alice) == {}


# --- typing and presence -------------------------------------------------------------


async def test_typing_notices_are_throttled_per_member_and_room():
    """A member may announce typing once per TYPING_INTERVAL in each room."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice, "a")
    live(hub, alice, "b")
    assert hub.typing_allowed(alice, "a")
    assert not hub.typing_allowed(alice, "a")
    assert hub.typing_allowed(alice, "b")
    await asyncio.sleep(TYPING_INTERVAL)
    assert hub.typing_allowed(alice, "a")


async def test_a_message_lets_the_next_typing_notice_through():
    """Sending a message ends the typing spell, so the throttle starts afresh."""
    hub, alice = Hub(), FakeMember("c1", ALICE)
    live(hub, alice, "a")
    live(hub, alice, "b")
    assert hub.typing_allowed(alice, "a") and hub.typing_allowed(alice, "b")
    hub.typing_stopped(alice, "a")
    assert hub.typing_allowed(alice, "a")
    assert not hub.typing_allowed(alice, "b")


async def test_a_member_that_goes_live_gets_the_room_presence():
    """The last step of a join hands the member who is in the room."""
    hub, alice, bob = Hub(), FakeMember("c1", ALICE), FakeMember("c2", BOB)
    live(hub, bob)
    live(hub, alice)
    [presence] = alice.of(PresenceEvent)
    assert [u.id for u in presence.users] == ["u-alice", "u-bob"]


async def test_presence_changes_are_coalesced_into_one_event():
    """A burst of joins gives members one presence update listing everyone, sorted by name."""
    hub = Hub()
    members = [FakeMember("c1", ALICE), FakeMember("c2", BOB), FakeMember("c3", CAROL)]
    for member in members:
        live(hub, member)

    def everyone() -> bool:
        return len(members[0].of(PresenceEvent)[-1].users) == len(members)

    await eventually(everyone, "a presence update listing everyone")
    latest = members[0].of(PresenceEvent)[-1]
    assert [u.name for u in latest.users] == ["Alice", "Bob", "carol"]
    assert len(members[0].of(PresenceEvent)) == 2  # its own join, then one for the burst


async def test_presence_lists_a_user_once_and_counts_everyone():
    """Two connections of one user are one entry; large rooms send a sample and a count."""
    hub, watcher = Hub(), FakeMember("w", User("u-watch", "watcher"))
    live(hub, watcher)
    for i in range(PRESENCE_MAX_USERS + 5):
        live(hub, FakeMember(f"c{i}", User(f"u{i:03}", f"user {i:03}")))
    live(hub, FakeMember("again", User("u000", "user 000")))
    await eventually(lambda: len(watcher.of(PresenceEvent)) > 1, "a presence update")
    latest = watcher.of(PresenceEvent)[-1]
    assert latest.count == PRESENCE_MAX_USERS + 6
    assert len(latest.users) == PRESENCE_MAX_USERS


async def test_a_joiner_is_listed_once_it_has_history():
    """Present means sent the room: a joiner that has had nothing is not listed yet."""
    hub, alice, bob = Hub(), FakeMember("c1", ALICE), FakeMember("c2", BOB)
    live(hub, alice)
    hub.deliver([event(1)])
    hub.begin_join(bob, "general")
    assert [u.id for u in hub.presence("general")] == ["u-alice"]
    assert not hub.caught_up(bob, "general", 0)  # sent history, not yet everything
    assert [u.id for u in hub.presence("general")] == ["u-alice", "u-bob"]


async def test_a_room_is_forgotten_when_its_last_member_here_leaves():
    """Once the last member here leaves, the hub has no room (the broker can unsubscribe)."""
    hub, alice, bob = Hub(), FakeMember("c1", ALICE), FakeMember("c2", BOB)
    live(hub, alice)
    hub.begin_join(bob, "general")
    hub.leave(alice, "general")
    assert hub.has_room("general")
    hub.leave(bob, "general")
    assert not hub.has_room("general")
    hub.leave(bob, "nowhere")
    assert not hub.has_room("nowhere")
    assert hub.rooms_of(alice) == set()


async def test_presence_of_an_unknown_room_is_empty():
    """A room with no members here has nobody present."""
    assert Hub().presence("nowhere") == []
