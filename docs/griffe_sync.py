"""A griffe extension for the docs build (mkdocs.yml loads it). `Ollama`, the blocking client, is
derived from AsyncOllama when sync.py is imported, which reading its source cannot see: this gives
the reference page its constructor with AsyncOllama's parameters, and each derived method with
AsyncOllama's parameters and docstring and the blocking return type."""

from __future__ import annotations

from typing import Any

import griffe

# the methods that return a stream, and the blocking stream each returns (sync.py's _streaming)
STREAMS = {"chat": "SyncChatStream", "generate": "SyncGenerateStream",
           "pull": "SyncProgressStream", "push": "SyncProgressStream",
           "create": "SyncProgressStream", "chat_with_tools": "SyncToolLoop"}


class BlockingClient(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "ollama_stream":
            return
        blocking: Any = pkg["sync"]["Ollama"]
        source: Any = pkg["client"]["AsyncOllama"]
        blocking["__init__"].parameters = source["__init__"].parameters
        for name, member in list(blocking.members.items()):
            origin = source.members.get(name)
            if not member.is_attribute or origin is None or not origin.is_function:
                continue
            method = griffe.Function(name, parameters=origin.parameters,
                                     returns=STREAMS.get(name, origin.returns),
                                     lineno=member.lineno, endlineno=member.endlineno)
            if origin.docstring is not None:
                method.docstring = griffe.Docstring(origin.docstring.value,
                                                    lineno=origin.docstring.lineno,
                                                    parent=method)
            blocking.set_member(name, method)

    on_package_loaded = on_package  # the hook's name before griffe 1.x renamed it
