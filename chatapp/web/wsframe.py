"""Pre-encoded WebSocket frames, so a broadcast encodes once for all its receivers.

Server-to-client frames are never masked (RFC 6455 section 5.1) and we do not
compress, so the bytes of a text frame depend only on its payload.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81


def text_frame(payload: str) -> bytes:
    """One complete, final, unmasked text frame carrying ``payload``."""
    data = payload.encode("utf-8")
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + data
