"""The README's module map matches the tree: every module is named, every name exists."""

from __future__ import annotations

import re

from procs import REPO

MAP = REPO / "README.md"


def module_map() -> dict[str, str]:
    """Each row of the map: its first cell (folders and files) and the rest."""
    text = MAP.read_text()
    section = text[text.index("## How it is built") : text.index("## Benchmarks")]
    rows = re.findall(r"^\| (`[^|]*`) \| (.*) \|$", section, re.MULTILINE)
    return {first: rest for first, rest in rows}


def test_every_module_is_in_the_readme_map():
    """Each Python module of chatapp/ is named in the row of its folder (or by path)."""
    rows = module_map()
    missing = []
    for path in sorted(REPO.glob("chatapp/**/*.py")):
        relative = path.relative_to(REPO)
        if path.name in ("__init__.py", "__main__.py"):
            continue
        folder = f"`{relative.parent}/`"
        row = next((rest for first, rest in rows.items() if folder in first), None)
        named_in_folder = row is not None and f"`{path.name}`" in row
        named_by_path = any(
            f"`{relative}`" in first or f"`{path.name}`" in first
            for first in rows
            if str(relative.parent) == "chatapp"
        )
        if not (named_in_folder or named_by_path):
            missing.append(str(relative))
    assert missing == []


def test_every_module_the_map_names_exists():
    """No row names a file that is gone."""
    rows = module_map()
    gone = []
    for first, rest in rows.items():
        folders = re.findall(r"`(chatapp/\w+)/`", first)
        for folder in folders:
            for name in re.findall(r"`(\w+\.py)`", rest):
                if not (REPO / folder / name).is_file():
                    gone.append(f"{folder}/{name}")
        if not folders:
            for name in re.findall(r"`(?:chatapp/)?(\w+\.py)`", first):
                if not (REPO / "chatapp" / name).is_file():
                    gone.append(name)
    assert gone == []
