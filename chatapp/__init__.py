"""chatapp: a self-hosted real-time chat server (Tornado + async SQLAlchemy)."""

__version__ = "0.1.0"
