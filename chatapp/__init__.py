"""chatapp: a self-hosted real-time chat server (Tornado + async SQLAlchemy)."""

__version__ = "0.1.0"
#: How the server names itself in ``hello`` frames and health answers.
SERVER_NAME = f"chatapp/{__version__}"
