"""The roster gives what sorting every present connection's user would give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatapp.core.roster import Roster
from chatapp.model import User

USERS = [User(f"u{i}", name) for i, name in enumerate(["ann", "Ann", "bob", "Zoë", "ann", "émile"])]


def expected(connections: list[User], count: int) -> tuple[tuple[User, ...], int]:
    distinct = {user.id: user for user in connections}
    ordered = sorted(distinct.values(), key=lambda u: (u.name.casefold(), u.id))
    return tuple(ordered[:count]), len(ordered)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(USERS)), max_size=60), st.integers(0, 8))
def test_roster_matches_a_sort_of_the_present_users(changes, count):
    """Connections come (True) and go (False, only when present) in any order."""
    roster, present = Roster(), []
    for arrives, user in changes:
        if arrives:
            roster.add(user)
            present.append(user)
        elif user in present:
            roster.remove(user)
            present.remove(user)
        assert (roster.first(count), len(roster)) == expected(present, count)


def test_a_user_stays_listed_until_the_last_connection_goes():
    roster, ann = Roster(), USERS[0]
    roster.add(ann)
    roster.add(ann)
    roster.remove(ann)
    assert roster.first(5) == (ann,)
    roster.remove(ann)
    assert (roster.first(5), len(roster)) == ((), 0)
