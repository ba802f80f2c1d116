"""Where the browser page and the migrations are, installed or in a checkout.

An installed chatapp holds them as the packages ``chatapp.static`` and
``chatapp.migrations``. Run from the root of a checkout, ``python -m chatapp``
imports the source folder ``chatapp/`` instead (the current directory comes
first on ``sys.path``), and there they are the top-level folders ``static/``
and ``migrations/`` beside it. Both layouts must work: the README's quick
start runs from the checkout's root after ``pip install .``.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """The folder of the ``chatapp.<name>`` resource package (``static`` or ``migrations``)."""
    try:
        with as_file(files(f"chatapp.{name}")) as path:
            return Path(path)
    except ModuleNotFoundError:
        beside = _CHECKOUT / name
        if (beside / "__init__.py").is_file():
            return beside
        raise
