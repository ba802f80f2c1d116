"""The browser client; installed as ``chatapp.static`` (see pyproject.toml)."""
