"""How the browser page and its files are served, and that an install ships them all."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

REPO = Path(__file__).resolve().parent.parent
STATIC = REPO / "static"


async def test_the_page_is_revalidated_and_confined_to_its_own_origin(http_url):
    """``/`` is never served stale, and its CSP allows only its own scripts and server."""
    response = await AsyncHTTPClient().fetch(f"{http_url}/")
    assert response.headers["Cache-Control"] == "no-cache"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


PAGE_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy")


@pytest.mark.parametrize("path", ["/static/index.html", "/static/%69ndex.html", "/static/icon.svg"])
async def test_every_way_to_open_a_page_carries_the_pages_headers(http_url, path):
    """The page (or a document) served from /static/ is as confined as ``/``: same CSP,
    nosniff and Referrer-Policy."""
    client = AsyncHTTPClient()
    page = await client.fetch(f"{http_url}/")
    other = await client.fetch(f"{http_url}{path}")
    assert {h: other.headers.get(h) for h in PAGE_HEADERS} == {
        h: page.headers[h] for h in PAGE_HEADERS
    }


async def test_static_files_are_revalidated_with_an_etag(http_url):
    """Unversioned modules must be checked on each load (304 when unchanged), never mixed."""
    client = AsyncHTTPClient()
    response = await client.fetch(f"{http_url}/static/chat.js")
    assert response.headers["Cache-Control"] == "no-cache"
    assert "javascript" in response.headers["Content-Type"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    etag = response.headers["Etag"]
    again = await client.fetch(
        f"{http_url}/static/chat.js", headers={"If-None-Match": etag}, raise_error=False
    )
    assert again.code == 304


async def test_versioned_static_urls_are_cached_for_long(http_url):
    """``?v=HASH`` URLs change with the content, so browsers may keep them for a year or more."""
    response = await AsyncHTTPClient().fetch(f"{http_url}/static/chat.css?v=1")
    found = re.search(r"max-age=(\d+)", response.headers["Cache-Control"])
    assert found is not None
    assert int(found[1]) >= 365 * 24 * 3600


def test_every_static_file_is_installed_with_the_package() -> None:
    """Each file in static/ matches a package-data glob, so ``pip install .`` ships it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["chatapp.static"]
    files = [p.name for p in STATIC.iterdir() if p.is_file() and p.name != "__init__.py"]
    missing = [name for name in files if not any(fnmatch.fnmatch(name, g) for g in globs)]
    assert not missing


def test_every_module_and_asset_the_page_names_exists() -> None:
    """Imports between the ES modules and the page's links resolve to files in static/."""
    names = set()
    for module in STATIC.glob("*.js"):
        names |= set(re.findall(r'from "\./([\w.-]+)"', module.read_text()))
    names |= set(re.findall(r'"/static/([\w.-]+)"', (STATIC / "index.html").read_text()))
    assert names, "nothing found: the patterns are out of date"
    assert sorted(n for n in names if not (STATIC / n).is_file()) == []
