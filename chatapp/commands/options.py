"""Command-line options shared by the server and the tools, built from what ``Settings`` declares.

Each setting is declared once, in ``chatapp.settings``; here it becomes an
argparse option whose help names its default and its environment variable.
Options a command was not given stay unset, so ``Settings.resolve`` can tell
"given" from "default" and consult the environment in between.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from chatapp.errors import ConfigError
from chatapp.settings import Group, Settings, declared_fields, default_of

#: The client commands' token, when not given with --token.
TOKEN_ENV = "CHATAPP_TOKEN"  # noqa: S105 (a variable name, not a secret)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not None, flags, empty lists or unset)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, True, False, []) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def add_settings_options(parser: argparse.ArgumentParser, *groups: Group) -> None:
    """An option for every setting of ``groups`` (every setting without groups)."""
    for item in declared_fields(*groups):
        declared = item.metadata["declared"]
        help_text = f"{declared.help} [env {declared.env}"
        shown = declared.shown_default or default_of(item)
        if not declared.secret and shown not in (None, (), False):
            help_text += f"; default {shown}"
        help_text += "]"
        common: dict[str, Any] = {"dest": item.name, "default": argparse.SUPPRESS}
        if declared.is_switch:
            if declared.off_flag is None:
                parser.add_argument(declared.flag, action="store_true", help=help_text, **common)
                continue
            pair = parser.add_mutually_exclusive_group()
            pair.add_argument(declared.flag, action="store_true", help=help_text, **common)
            pair.add_argument(declared.off_flag, action="store_false", help="see above", **common)
            continue
        parser.add_argument(
            declared.flag,
            type=argument_type(declared.parse),
            metavar=declared.metavar,
            choices=declared.choices,
            nargs="+" if declared.is_list else None,
            help=help_text,
            **common,
        )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings the command line gave, completed from the environment and the defaults."""
    names = {item.name for item in declared_fields()}
    given = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in vars(args).items()
        if name in names
    }
    return Settings.resolve(given)


def resolve_or_exit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """``settings_from``; a bad environment variable ends like a bad option (usage, exit 2)."""
    try:
        return settings_from(args)
    except ConfigError as exc:
        parser.error(exc.reason)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Options of the client commands (``send``, ``tail``): where the server is, who we are."""
    parser.add_argument(
        "--url", default="ws://127.0.0.1:3000", help="server address, ws:// or wss://"
    )
    parser.add_argument(
        "--token",
        default=argparse.SUPPRESS,  # never echo a secret in --help
        help=f"JWT to authenticate with (better: set {TOKEN_ENV}); none means guest",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait per step")


def token_of(args: argparse.Namespace) -> str | None:
    return getattr(args, "token", None) or os.environ.get(TOKEN_ENV) or None


def argument_type(parse: Any) -> Any:
    """``parse`` with argparse's error type, so a bad value is a usage error naming the option."""

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert
