"""The encoders: what a member is handed, as WebSocket frames, encoded once per kind."""

from __future__ import annotations

import json

from factories import ALICE, BOB, decode_frames, event, stored

from chatapp.core.hub import Delivery
from chatapp.model import History, MessageEvent, Page, PresenceEvent, TypingEvent, User
from chatapp.web.encoders import JsonEncoder, ListedJson, MessageJson, TextEncoder, UserJson
from chatapp.web.wsframe import text_frame

JSON = JsonEncoder()
TEXT = TextEncoder()


class Recipient:
    def __init__(self, conn_id: str, user: User) -> None:
        self.id = conn_id
        self.user = user


def payloads(data: bytes) -> list[dict]:
    return [json.loads(p) for p in decode_frames(data)]


def test_the_frame_decoder_reads_all_length_forms():
    """The tests' decoder handles 7-bit, 16-bit and 64-bit payload lengths."""
    texts = ["a", "b" * 300, "c" * 70000]
    assert decode_frames(b"".join(text_frame(t) for t in texts)) == texts


def test_a_delivery_is_encoded_once_for_every_json_member():
    """The second member gets the very bytes the first one did: no second encoding."""
    delivery = Delivery("general", [event(1), event(2)])
    first = JSON.delivery(delivery, Recipient("c1", ALICE))
    second = JSON.delivery(delivery, Recipient("c2", BOB))
    assert second is first
    assert [f["seq"] for f in payloads(first)] == [1, 2]


def test_json_members_do_not_get_their_own_typing_notices():
    """Typing goes to everyone but the connection that typed; messages to everyone."""
    delivery = Delivery("general", [event(1, origin="c1"), TypingEvent("general", ALICE, "c1")])
    own = payloads(JSON.delivery(delivery, Recipient("c1", ALICE)))
    other = payloads(JSON.delivery(delivery, Recipient("c2", BOB)))
    assert [f["type"] for f in own] == ["message"]
    assert [f["type"] for f in other] == ["message", "typing"]
    assert other[1]["user"] == {"id": "u-alice", "name": "Alice"}


def test_presence_is_a_json_frame_with_a_sample_and_a_count():
    """Presence lists users and how many are present in all."""
    delivery = Delivery("general", [PresenceEvent("general", (ALICE, BOB), 7)])
    [frame] = payloads(JSON.delivery(delivery, Recipient("c1", ALICE)))
    assert frame == {
        "type": "presence",
        "room": "general",
        "users": [{"id": "u-alice", "name": "Alice"}, {"id": "u-bob", "name": "Bob"}],
        "count": 7,
    }


def test_text_members_get_lines_of_others_messages_only():
    """The tutorial's clients see "name: text" lines, never their own, and nothing else."""
    delivery = Delivery(
        "general",
        [
            event(1, origin="c1", user=ALICE),
            TypingEvent("general", BOB, "c2"),
            event(2, origin="c2"),
            PresenceEvent("general", (ALICE,), 1),
        ],
    )
    assert decode_frames(TEXT.delivery(delivery, Recipient("c1", ALICE))) == ["Bob: text 2"]
    assert decode_frames(TEXT.delivery(delivery, Recipient("c3", BOB))) == [
        "Alice: text 1",
        "Bob: text 2",
    ]


def test_a_message_read_back_from_the_store_is_own_by_user_id():
    """Without an origin connection, a text member's own messages are known by its user."""
    delivery = Delivery("general", [MessageEvent(stored(1, user=ALICE), ""), event(2)])
    assert decode_frames(TEXT.delivery(delivery, Recipient("c1", ALICE))) == ["Bob: text 2"]


def test_history_is_one_json_frame_or_lines_of_text():
    """A history page: one ``history`` frame for JSON, every message as a line for text."""
    page = Page([stored(1, user=ALICE), stored(2)], has_more=True, pruned_before=None)
    [frame] = payloads(JSON.history(History("general", page)))
    assert (frame["type"], [m["seq"] for m in frame["messages"]], frame["has_more"]) == (
        "history",
        [1, 2],
        True,
    )
    assert decode_frames(TEXT.history(History("general", page))) == [
        "Alice: text 1",
        "Bob: text 2",
    ]


def test_history_reuses_each_message_encoding_and_matches_the_plain_encoding():
    """History frames are built from the messages' cached JSON, identical to encoding anew."""
    encoder = JsonEncoder()
    live = Delivery("general", [event(1), event(2)])
    encoder.delivery(live, Recipient("c1", ALICE))
    page = Page([stored(1), stored(2)], has_more=False, pruned_before=1)
    assert encoder.history(History("general", page)) == JSON.history(History("general", page))
    [frame] = payloads(encoder.history(History("general", page)))
    assert frame["pruned_before"] == 1 and [m["seq"] for m in frame["messages"]] == [1, 2]


def test_the_message_cache_forgets_the_oldest_past_its_budget():
    """The cache of message JSON stays within its character budget."""
    cache = MessageJson(budget=1000)
    for seq in range(1, 50):
        cache(stored(seq))
    assert cache._size <= 1000 and stored(49).id in cache._texts
    assert stored(1).id not in cache._texts


def test_presence_from_cached_user_json_is_the_same_document() -> None:
    """Presence frames built from cached user JSON say what a plain JSON encoding says, a
    renamed user included, and the cache stays within its size."""
    encoder = JsonEncoder()
    encoder.user_json = UserJson(most=3)
    users = [User(f"u{i}", f'name "{i}" \u2713') for i in range(5)]
    renamed = [User("u1", "someone else"), *users[2:]]
    for present in (users, users, renamed):
        delivery = Delivery("general", [PresenceEvent("general", tuple(present), 9)])
        [frame] = payloads(encoder.delivery(delivery, Recipient("c1", ALICE)))
        assert frame == {
            "type": "presence",
            "room": "general",
            "users": [{"id": u.id, "name": u.name} for u in present],
            "count": 9,
        }
    assert len(encoder.user_json._texts) <= 3


def test_a_rooms_listed_users_are_encoded_once_while_they_stay_the_same() -> None:
    """Joiners that sort after the listed users change only the count: the same users'
    JSON is reused (the very string), in frames that still say what a plain encoding
    says; a rename among them, or another list, is encoded afresh; rooms apart."""
    encoder = JsonEncoder()
    listed = [User(f"u{i}", f"user {i}") for i in range(3)]

    def presence(room: str, users: list[User], count: int) -> dict:
        delivery = Delivery(room, [PresenceEvent(room, tuple(users), count)])
        [frame] = payloads(encoder.delivery(delivery, Recipient("c1", ALICE)))
        return frame

    for count in (3, 4, 5):
        assert presence("general", listed, count) == {
            "type": "presence",
            "room": "general",
            "users": [{"id": u.id, "name": u.name} for u in listed],
            "count": count,
        }
    first = encoder.listed_json("general", tuple(listed), encoder.user_json)
    assert encoder.listed_json("general", tuple(list(listed)), encoder.user_json) is first
    renamed = [User("u0", "a new name"), *listed[1:]]
    assert presence("general", renamed, 5)["users"][0] == {"id": "u0", "name": "a new name"}
    assert presence("other", listed[:1], 1)["users"] == [{"id": "u0", "name": "user 0"}]
    assert presence("general", renamed, 6)["users"][0]["name"] == "a new name"


def test_the_listed_users_cache_forgets_everything_past_its_room_count() -> None:
    listed = ListedJson(most=2)
    user_json = UserJson()
    for room in ("a", "b", "c"):
        listed(room, (ALICE,), user_json)
    assert len(listed._listed) <= 2
