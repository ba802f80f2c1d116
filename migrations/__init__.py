"""Alembic migrations; installed as ``chatapp.migrations`` (see pyproject.toml)."""
