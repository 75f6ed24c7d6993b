"""/docs and /redoc work on an isolated network: every asset comes from the service itself."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import httpx
import pytest


class _References(HTMLParser):
    """Collects every URL a page makes the browser load, and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.urls += [v for k, v in values.items() if k in {"src", "href", "spec-url"} and v]
        self._in_script = tag == "script" and "src" not in values

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_page_and_its_assets_come_from_the_service(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert not re.search(r"(?:src|href|url)\s*[:=]\s*['\"]?(?:https?:)?//", html), (
        "the page loads something from another host"
    )
    references = _References()
    references.feed(html)
    assert references.urls, "the page references no asset"
    scripts = [u for u in references.urls if u.endswith(".js")]
    assert scripts, "the page loads no script"
    for url in references.urls:
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "http" not in policy  # no other origin is allowed
    assert "*" not in policy
    for script in references.inline_scripts:  # each inline script is allowed by its hash only
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]


async def test_the_swagger_page_turns_off_the_online_validator(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html
    assert (await client.get("/openapi.json")).status_code == 200
