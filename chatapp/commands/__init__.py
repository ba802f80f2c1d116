"""Command-line tools besides the server itself: ``python -m chatapp COMMAND``."""
