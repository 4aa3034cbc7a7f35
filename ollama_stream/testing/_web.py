"""The fake's cloud-facing endpoints: `/api/status` (v0.16.2) and the experimental web search and
fetch (v0.18.0), which Ollama proxies to ollama.com and which the fake answers itself with
deterministic canned results, or with the pages a test added (`FakeOllama.add_web_page`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from ._godecode import MISSING_BODY
from ._wire import _json, _json_error, _Wire

_DISABLED = "ollama cloud is disabled"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _WebPage:
    url: str
    title: str
    content: str
    links: tuple[str, ...] = field(default_factory=tuple)


def _slug(text: str) -> str:
    return "-".join(_WORD.findall(text.lower())) or "page"


def _canned_search(query: str, count: int) -> list[dict[str, Any]]:
    """Search results that depend only on the query, so that runs agree."""
    words = " ".join(_WORD.findall(query)) or query
    slug = _slug(query)
    return [{"title": f"{words.title()} - result {n}",
             "url": f"https://example.com/{slug}/{n}",
             "content": f"Result {n} for {query!r}: a canned page about {words}."}
            for n in range(1, count + 1)]


class _WebRoutes(_Wire):
    """`/api/status`, `/api/experimental/web_search` and `/api/experimental/web_fetch`."""

    cloud_disabled: bool
    _web_pages: dict[str, _WebPage]

    async def _status(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        source = "env" if self.cloud_disabled else "none"
        return _json({"cloud": {"disabled": self.cloud_disabled, "source": source}})

    async def _web_body(self, request: web.Request,
                        operation: str) -> dict[str, Any] | web.Response:
        raw = await self._record(request)
        if not raw.strip():
            return _json_error(400, MISSING_BODY)
        if self.cloud_disabled:
            return _json_error(403, f"{_DISABLED}: {operation} is unavailable")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        return body if isinstance(body, dict) else {}

    async def _web_search(self, request: web.Request) -> web.StreamResponse:
        """`{query, max_results}` -> `{"results": [{"title", "url", "content"}]}`; max_results
        defaults to 5 and is at most 10, as on ollama.com."""
        body = await self._web_body(request, "web search")
        if isinstance(body, web.Response):
            return body
        query = str(body.get("query") or "")
        wanted = body.get("max_results")
        count = min(wanted, 10) if type(wanted) is int and wanted > 0 else 5
        if not query.strip():
            return _json({"results": []})
        if self._web_pages:
            words = {w.lower() for w in _WORD.findall(query)}
            found = [page for page in self._web_pages.values()
                     if words & {w.lower() for w in _WORD.findall(f"{page.title} {page.content}")}]
            results = [{"title": p.title, "url": p.url, "content": p.content} for p in found]
            return _json({"results": results[:count]})
        return _json({"results": _canned_search(query, count)})

    async def _web_fetch(self, request: web.Request) -> web.StreamResponse:
        """`{url}` -> `{"title", "content", "links"}` (links left out when there are none)."""
        body = await self._web_body(request, "web fetch")
        if isinstance(body, web.Response):
            return body
        url = str(body.get("url") or "")
        page = self._web_pages.get(url)
        if page is None:
            slug = _slug(url.split("://", 1)[-1])
            page = _WebPage(url, f"Page {slug}", f"The canned content of {url}.",
                            (f"https://example.com/{slug}/more",))
        answer: dict[str, Any] = {"title": page.title, "content": page.content}
        if page.links:
            answer["links"] = list(page.links)
        return _json(answer)
