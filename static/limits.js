// The server's limits, as GET /api/auth publishes them: the room-name pattern,
// text length, page sizes, the rate limit and the close codes. The page keeps
// no copy of its own; nothing reads them before Session.loadOptions().

export const limits = {
  room_pattern: "",
  max_text_chars: 0,
  max_name_chars: 0,
  default_history_limit: 0,
  max_history_limit: 0,
  default_search_limit: 0,
  max_search_limit: 0,
  max_search_query_chars: 0,
  rate_limit: 0,
  rate_burst: 0,
  close_codes: {},
};
// Matches nothing until the server has said what a room name is.
const compiled = { roomName: /$^/ };

export function adoptLimits(published) {
  Object.assign(limits, published);
  compiled.roomName = new RegExp(`^(?:${limits.room_pattern})$`);
}

export function isRoomName(name) {
  return compiled.roomName.test(name);
}

/** What to tell a user whose room name the server would refuse. */
export function roomNameRefusal(name) {
  return `“${name}” is not a room name this server accepts.`;
}
