"""FakeOllama: a real HTTP server on 127.0.0.1 that behaves as Ollama v0.33 does, for tests, demos
and trying clients without Ollama.

    async with FakeOllama() as fake:                  # in the running loop
        fake.queue_reply(content="Hi!", thinking="Greet back.")
        async with AsyncOllama(fake.url) as client: ...
    with FakeOllama() as fake: ...                    # in a thread of its own, for blocking clients
    FakeOllama(models=["qwen3", FakeModel("tiny", capabilities=["completion"])])

Replies stream token by token with Ollama's shapes, bytes (Go's field order and escapes) and real
metrics on the final chunk; requests are checked in the server's order with its statuses and
texts (unknown models, capabilities, think, options, keep_alive, bodies). Faults can be queued too
(HTTP errors, errors before or after output, dropped or stalled connections).

Besides `/api/chat` it serves the rest of Ollama's native API with the same shapes: `/api/generate`
(sharing the reply queue), `/api/embed`, the model store (`/api/tags`, `/api/show`, `/api/ps`,
`/api/pull`, `/api/push`, `/api/create`, `/api/copy`, `/api/delete`), blobs (`/api/blobs/:digest`),
`/api/status`, the experimental web search and fetch, `/api/version` and `/`.
"""

from __future__ import annotations

from ._server import FakeOllama
from ._state import FakeReply, RecordedRequest
from ._store import DEFAULT_MODELS, DEFAULT_PULLABLE, FakeModel
from ._store import FAKE_VERSION as FAKE_VERSION
from ._store import split_tokens as split_tokens

__all__ = ["DEFAULT_MODELS", "DEFAULT_PULLABLE", "FakeModel", "FakeOllama", "FakeReply",
           "RecordedRequest"]
