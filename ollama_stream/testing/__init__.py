"""FakeOllama: a real HTTP server on 127.0.0.1 that speaks Ollama's protocol, for tests and demos.

    async with FakeOllama() as fake:                  # in the running loop
        fake.queue_reply(content="Hi!", thinking="Greet back.")
        async with AsyncOllama(fake.url) as client: ...
    with FakeOllama() as fake: ...                    # in a thread of its own, for blocking clients

Replies stream token by token with Ollama's shapes and real metrics on the final chunk. Faults can
be queued too (HTTP errors, mid-stream error lines, dropped or stalled connections) to test error
handling.

Besides `/api/chat` it serves the rest of Ollama's native API with the same shapes: `/api/generate`
(sharing the reply queue), `/api/embed`, the model store (`/api/tags`, `/api/show`, `/api/ps`,
`/api/pull`, `/api/push`, `/api/create`, `/api/copy`, `/api/delete`), blobs (`/api/blobs/:digest`),
`/api/version` and `/`.
"""

from __future__ import annotations

from ._server import FakeOllama
from ._state import FakeReply, RecordedRequest
from ._store import DEFAULT_MODELS, DEFAULT_PULLABLE
from ._store import FAKE_VERSION as FAKE_VERSION
from ._store import split_tokens as split_tokens

__all__ = ["DEFAULT_MODELS", "DEFAULT_PULLABLE", "FakeOllama", "FakeReply", "RecordedRequest"]
