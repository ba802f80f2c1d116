// What the page's modules share once the user is signed in: who they are,
// their rooms and unsent messages, the connection and the views. chat.js
// fills it in at start; frames.js, controller.js, sending.js and link.js work on it.

export const app = {
  me: null, // {id, name}
  session: null, // Session
  rooms: null, // Rooms
  outbox: null, // Outbox
  connection: null, // Connection
  view: null, // MessageView
  sidebar: null, // Sidebar
  composer: null, // Composer
  alerts: null, // Alerts
  joinedByUrl: "", // the room the current connection joined through its URL
};
