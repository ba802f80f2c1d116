"""The web edge: Tornado handlers for the page, the HTTP API and the WebSockets."""
