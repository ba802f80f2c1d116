"""The protocol's limits and defaults, in one place.

Clients rely on them (the browser reads them from ``GET /api/auth``), so they
are part of the wire contract: change one only together with the docs.
"""

from __future__ import annotations

#: Room names: letters, digits, ``_``, ``-`` and ``.``, 1 to 64 characters.
ROOM_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}"
DEFAULT_ROOM = "general"
#: Longest message text, in characters (code points).
MAX_TEXT_CHARS = 4000
#: Longest ``client_id`` (idempotency key), in characters.
MAX_CLIENT_ID_CHARS = 128
#: Largest incoming WebSocket frame; Tornado closes with 1009 above it.
MAX_FRAME_BYTES = 64 * 1024
#: Default and largest page of history.
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 200
#: Default and largest number of search hits; longest search query, in characters.
DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 100
MAX_SEARCH_QUERY_CHARS = 256
#: Matches of a search counted at most (``total`` of GET /api/search; ``total_capped`` beyond).
SEARCH_COUNT_CAP = 1000
#: Largest seq (and so ``before``/``since``) there can be: the database column is 32-bit.
MAX_SEQ = 2**31 - 1
#: Most messages replayed after ``since`` before the server sends only the newest page.
MAX_REPLAY = 1000
#: Seconds a message may wait for the database, by default, before its sender is told
#: ``unavailable``; also the bound on waits for locks and connections.
DEFAULT_DB_TIMEOUT = 5.0
#: Rooms one connection may be in at once, by default.
DEFAULT_MAX_ROOMS = 100
#: Least scrollback, search and room-list requests one address may make in a burst.
MIN_HTTP_BURST = 40
#: Guest sign-ins one address may make in a burst (the rate is --guest-rate-limit).
GUEST_BURST = 10
#: Minimum burst of the per-connection rate limit, in frames.
MIN_RATE_BURST = 20
#: Consecutive rate-limited frames after which the connection is closed (1008).
MAX_REJECTED_FRAMES = 200
#: Messages from one connection waiting for their commit before it stops reading.
MAX_INFLIGHT_PER_CONNECTION = 64
