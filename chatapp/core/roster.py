"""Who is present in one room, kept sorted by name as members come and go.

A ``presence`` frame lists the first users by name and the total. Sorting
every member on each change made a burst of N joins cost N sorts of N; the
roster keeps distinct users in order instead (a binary search and a list
insert per change), so a presence event is a slice.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from chatapp.model import User


@dataclass(slots=True)
class _Entry:
    key: tuple[str, str]  # (name as people sort it, id): its place in the order
    user: User  # as its first present connection named it
    connections: int


class Roster:
    """Distinct present users of a room, counted by connection; ``first(n)`` in name order."""

    __slots__ = ("_entries", "_order", "_users")

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}  # by user id
        self._order: list[tuple[str, str]] = []  # the entries' keys, sorted
        self._users: list[User] = []  # the entries' users, in the same order

    def add(self, user: User) -> None:
        """One more connection of ``user`` is present."""
        entry = self._entries.get(user.id)
        if entry is not None:
            entry.connections += 1
            return
        entry = self._entries[user.id] = _Entry((user.name.casefold(), user.id), user, 1)
        place = bisect.bisect_left(self._order, entry.key)
        self._order.insert(place, entry.key)
        self._users.insert(place, user)

    def remove(self, user: User) -> None:
        """One connection of ``user`` is no longer present."""
        entry = self._entries.get(user.id)
        if entry is None:
            return
        entry.connections -= 1
        if entry.connections:
            return
        del self._entries[user.id]
        place = bisect.bisect_left(self._order, entry.key)
        del self._order[place]
        del self._users[place]

    def first(self, count: int) -> tuple[User, ...]:
        """The first ``count`` users in name order."""
        return tuple(self._users[:count])

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, user_id: object) -> bool:
        """Whether the user with this id is present."""
        return user_id in self._entries
