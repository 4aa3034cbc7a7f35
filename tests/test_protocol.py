"""The sans-I/O core on raw bytes: every recorded transcript whole, byte by byte, at every split
point."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollama_stream import ChatChunk, Message, Metrics, ProtocolError, StreamError, ToolCall
from ollama_stream.protocol import ChatAccumulator, NDJSONDecoder, parse_chat_chunk

FIXTURES = Path(__file__).parent / "fixtures"

# What each transcript must accumulate to.
EXPECTED: dict[str, dict[str, Any]] = {
    "thinking_content": dict(
        content="The sky is blue.", thinking="Let me think.", tool_calls=[], done_reason="stop",
        chunks=6,
        metrics=Metrics(182242375, 41295167, 169, 24573166, 15, 115959084),
    ),
    "tool_calls_separate": dict(
        content="", thinking="Need the weather.", done_reason="stop", chunks=4,
        tool_calls=[
            ToolCall("get_weather", {"city": "Tokyo"}, "call_ab12cd34", 0),
            ToolCall("get_time", {"tz": "Asia/Tokyo", "format": {"h24": True}}, "call_ef56gh78", 1),
            ToolCall("get_weather", {"city": "Paris"}, "call_ij90kl12", 2),
        ],
        metrics=Metrics(5000, 1000, 50, 1000, 20, 2000),
    ),
    "tool_calls_on_done": dict(
        content="Checking", thinking="User wants a file listing.", done_reason="stop", chunks=3,
        tool_calls=[ToolCall("list_files", {"path": "/tmp", "hidden": False}, "call_00000001", 0)],
        metrics=Metrics(900, None, None, None, 3, 300),
    ),
    "old_server": dict(
        content="Sure", thinking="", done_reason=None, chunks=3,
        tool_calls=[ToolCall("add", {"a": 1, "b": 2.5})],
        metrics=Metrics(1234, None, None, None, 2, None),
    ),
    "unicode": dict(
        content="こんにちは, Zoë! 👋🏽 €é😀", thinking="用户问候 🤔", tool_calls=[],
        done_reason="stop", chunks=5,
        metrics=Metrics(None, None, None, None, 4, 1000000000),
    ),
    "unknown_fields": dict(
        content="Hi!", thinking="", tool_calls=[], done_reason="length", chunks=3,
        metrics=Metrics(None, None, 3, None, 2, 0),
    ),
    "crlf_no_final_newline": dict(
        content="ab", thinking="", tool_calls=[], done_reason="stop", chunks=3,
        metrics=Metrics(),
    ),
    "load_empty_messages": dict(
        content="", thinking="", tool_calls=[], done_reason="load", chunks=1, metrics=Metrics(),
    ),
}
TRANSCRIPTS = sorted(EXPECTED)


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.ndjson").read_bytes()


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def byte_by_byte(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i:i + 1]


def random_fragments(seed: int) -> Callable[[bytes], Iterator[bytes]]:
    def split(data: bytes) -> Iterator[bytes]:
        rng = random.Random(seed)
        i = 0
        while i < len(data):
            n = rng.randint(1, 64)
            yield data[i:i + n]
            i += n
    return split


def decode(pieces: Iterator[bytes], max_line_bytes: int = 2**20) -> list[dict[str, Any]]:
    decoder = NDJSONDecoder(max_line_bytes)
    out: list[dict[str, Any]] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    out.extend(decoder.close())
    return out


def accumulate(objs: list[dict[str, Any]]) -> tuple[ChatAccumulator, list[ChatChunk]]:
    acc = ChatAccumulator()
    chunks = []
    for obj in objs:
        chunk = parse_chat_chunk(obj)
        acc.add(chunk)
        chunks.append(chunk)
    return acc, chunks


def reference_objects(data: bytes) -> list[dict[str, Any]]:
    """An independent reading of the transcript: splitlines + json, skipping blank lines."""
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def check_expected(name: str, acc: ChatAccumulator, chunks: list[ChatChunk]) -> None:
    want = EXPECTED[name]
    result = acc.result()
    assert result.message.content == want["content"]
    assert result.message.thinking == want["thinking"]
    assert list(result.message.tool_calls) == want["tool_calls"]
    assert result.message.role == "assistant"
    assert result.done_reason == want["done_reason"]
    assert result.metrics == want["metrics"]
    assert len(chunks) == want["chunks"]
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c.metrics is None for c in chunks[:-1])


@pytest.mark.parametrize("name", TRANSCRIPTS)
@pytest.mark.parametrize("splitter",
                         [whole, byte_by_byte, random_fragments(1), random_fragments(2)],
                         ids=["whole", "byte-by-byte", "random-1", "random-2"])
def test_transcript_replayed(name: str, splitter: Callable[[bytes], Iterator[bytes]]) -> None:
    data = load(name)
    objs = decode(splitter(data))
    assert objs == reference_objects(data)
    check_expected(name, *accumulate(objs))


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_split_at_every_point(name: str) -> None:
    data = load(name)
    expected = reference_objects(data)
    for i in range(len(data) + 1):
        assert decode(iter([data[:i], data[i:]])) == expected, f"split at byte {i}"


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_with_trailing_junk_raises_after_the_good_lines(name: str) -> None:
    good = load(name)
    data = good.rstrip(b"\n") + b"\nnot json at all\n{\"after\": 1}\n"
    decoder = NDJSONDecoder()
    assert decoder.feed(data) == reference_objects(good)  # the good lines come out first
    assert decoder.error is not None
    with pytest.raises(ProtocolError,
                       match=r"line \d+ of the stream is not valid JSON: b'not json at all'"):
        decoder.close()
    with pytest.raises(ProtocolError):
        decoder.feed(b"{}\n")  # a failed decoder stays failed


def test_multibyte_character_split_in_two() -> None:
    line = '{"message":{"role":"assistant","content":"€😀"},"done":false}\n'.encode()
    cut = line.index("😀".encode()) + 2  # inside the 4-byte emoji
    decoder = NDJSONDecoder()
    assert decoder.feed(line[:cut]) == []
    assert decoder.pending_bytes == cut
    [obj] = decoder.feed(line[cut:])
    assert obj["message"]["content"] == "€😀"
    assert decoder.pending_bytes == 0


def test_crlf_blank_and_whitespace_lines_are_skipped() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'\n\r\n  \t \n{"a":1}\r\n\n{"b":2}\n') == [{"a": 1}, {"b": 2}]
    assert decoder.lines == 6


def test_last_line_without_newline_is_decoded_at_close() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"b"') == [{"a": 1}]
    assert decoder.feed(b":2}") == []
    assert decoder.close() == [{"b": 2}]
    assert decoder.close() == []


def test_close_with_half_a_line_is_a_protocol_error() -> None:
    decoder = NDJSONDecoder()
    decoder.feed(b'{"a":1}\n{"b":')
    with pytest.raises(ProtocolError, match=r"line 2 of the stream is not valid JSON"):
        decoder.close()


def test_invalid_json_names_line_number_and_first_200_bytes() -> None:
    decoder = NDJSONDecoder()
    bad = b"<html>" + b"x" * 500
    assert decoder.feed(b'{"ok":1}\n\n' + bad + b"\n") == [{"ok": 1}]
    with pytest.raises(ProtocolError) as info:
        decoder.close()
    message = str(info.value)
    assert "line 3 " in message
    assert repr(bad[:200]) in message
    assert "first 200 of 506 bytes" in message
    assert repr(bad[:201]) not in message


@pytest.mark.parametrize("line,kind", [
    (b"[1, 2]", "list"), (b'"text"', "str"), (b"42", "int"), (b"null", "NoneType"),
    (b"true", "bool"),
])
def test_a_line_that_is_not_an_object_is_a_protocol_error(line: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError,
                       match=f"line 1 of the stream is a JSON {kind}, not an object"):
        NDJSONDecoder().feed(line + b"\n")


def test_invalid_utf8_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not valid JSON"):
        NDJSONDecoder().feed(b'{"a":"\xff\xfe"}\n')


def test_line_at_the_limit_passes_and_one_byte_more_fails() -> None:
    line = b'{"a":"' + b"x" * 94 + b'"}'
    assert len(line) == 102
    assert NDJSONDecoder(max_line_bytes=102).feed(line + b"\n") == [{"a": "x" * 94}]
    with pytest.raises(ProtocolError, match=r"line 1 of the stream is over max_line_bytes=101"):
        NDJSONDecoder(max_line_bytes=101).feed(line + b"\n")


def test_overlong_line_fails_before_its_end_arrives() -> None:
    decoder = NDJSONDecoder(max_line_bytes=1000)
    decoder.feed(b'{"ok":true}\n')
    decoder.feed(b"x" * 1000)
    with pytest.raises(ProtocolError,
                       match=r"line 2 of the stream is over max_line_bytes=1000 \(1001 bytes"):
        decoder.feed(b"y")


def test_overlong_tail_is_refused_after_the_complete_lines_are_returned() -> None:
    decoder = NDJSONDecoder(max_line_bytes=50)
    assert decoder.feed(b'{"a":1}\n' + b"z" * 80) == [{"a": 1}]
    with pytest.raises(ProtocolError, match="over max_line_bytes=50"):
        decoder.feed(b"more")


def test_big_line_within_limit() -> None:
    arguments = {"blob": "é" * 600_000}  # over 1 MiB as UTF-8
    line = orjson.dumps({"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "save", "arguments": arguments}}]}, "done": False}) + b"\n"
    assert len(line) > 2**20
    objs = decode(random_fragments(7)(line), max_line_bytes=16 * 2**20)
    [chunk] = [parse_chat_chunk(obj) for obj in objs]
    assert chunk.tool_calls[0].arguments == arguments


def test_max_line_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        NDJSONDecoder(0)


# -- chunk parsing ---------------------------------------------------------------------------------

def test_chunk_fields_and_raw() -> None:
    obj = orjson.loads(load("unknown_fields").splitlines()[0])
    chunk = parse_chat_chunk(obj)
    assert chunk.model == "qwen3"
    assert chunk.created_at == "2026-03-01T00:00:00Z"
    assert chunk.content == "Hi"
    assert chunk.thinking == ""
    assert chunk.tool_calls == ()
    assert chunk.done is False and chunk.done_reason is None and chunk.metrics is None
    assert chunk.logprobs == [{"token": "Hi", "logprob": -0.01, "bytes": [72, 105],
                               "top_logprobs": [{"token": "Hi", "logprob": -0.01}]}]
    assert chunk.raw is obj
    assert chunk.raw["remote_model"] == "qwen3:480b-cloud"


def test_absent_optional_fields_take_defaults() -> None:
    chunk = parse_chat_chunk({})
    assert ((chunk.model, chunk.created_at, chunk.content, chunk.thinking, chunk.tool_calls,
             chunk.done) == ("", "", "", "", (), False))
    final = parse_chat_chunk({"done": True})
    assert final.metrics == Metrics() and final.done_reason is None
    assert parse_chat_chunk({"message": {"role": "assistant", "content": None,
                                         "thinking": None}}).content == ""


def test_float_durations_that_are_whole_numbers_are_accepted() -> None:
    chunk = parse_chat_chunk({"done": True, "eval_count": 5.0, "eval_duration": 1e9})
    assert chunk.metrics == Metrics(eval_count=5, eval_duration=1_000_000_000)
    assert chunk.metrics is not None and chunk.metrics.tokens_per_second == 5.0


@pytest.mark.parametrize("obj,field", [
    ({"message": "hi"}, "'message'"),
    ({"message": ["hi"]}, "'message'"),
    ({"message": {"content": 5}}, "'message.content'"),
    ({"message": {"content": "", "thinking": {"a": 1}}}, "'message.thinking'"),
    ({"message": {"content": "", "tool_calls": {"function": {}}}}, "'message.tool_calls'"),
    ({"done": "yes"}, "'done'"),
    ({"done": 1}, "'done'"),
    ({"done": True, "done_reason": 5}, "'done_reason'"),
    ({"done": True, "eval_count": "15"}, "'eval_count'"),
    ({"done": True, "eval_duration": 1.5}, "'eval_duration'"),
    ({"model": 3}, "'model'"),
    ({"created_at": None}, "'created_at'"),
    ({"logprobs": {"token": "a"}}, "'logprobs'"),
])
def test_wrong_types_are_protocol_errors_naming_the_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        parse_chat_chunk(obj)


@pytest.mark.parametrize("calls", [
    [{"name": "no_function_wrapper"}],
    [{"function": {"arguments": {}}}],
    [{"function": {"name": "f", "arguments": "{not json"}}],
    [{"function": {"name": "f", "arguments": [1, 2]}}],
    ["just a string"],
])
def test_malformed_tool_calls_are_protocol_errors(calls: list[Any]) -> None:
    with pytest.raises(ProtocolError, match="tool call"):
        parse_chat_chunk({"message": {"content": "", "tool_calls": calls}})


def test_tool_call_arguments_as_json_string_are_decoded() -> None:
    chunk = parse_chat_chunk({"message": {"tool_calls": [{"function": {"name": "f",
                                                                       "arguments": '{"x": 1}'}}]}})
    assert chunk.tool_calls == (ToolCall("f", {"x": 1}),)


def test_error_line_is_a_stream_error_with_the_server_text() -> None:
    with pytest.raises(StreamError) as info:
        parse_chat_chunk({"error": "model runner has unexpectedly stopped"})
    assert info.value.error == "model runner has unexpectedly stopped"
    assert "model runner has unexpectedly stopped" in str(info.value)
    with pytest.raises(StreamError) as info:
        parse_chat_chunk({"error": {"code": 7}})
    assert info.value.error == '{"code":7}'


def test_error_transcript_yields_chunks_then_stream_error() -> None:
    objs = decode(whole(load("error_midstream")))
    acc = ChatAccumulator()
    with pytest.raises(StreamError, match="model runner has unexpectedly stopped"):
        for obj in objs:
            acc.add(parse_chat_chunk(obj))
    assert acc.message.content == "The answer is"
    assert acc.done is False


# -- the accumulator on chunk lists ----------------------------------------------------------------

def make_chunk(content: str = "", thinking: str = "", tool_calls: tuple[ToolCall, ...] = (),
               done: bool = False, done_reason: str | None = None, metrics: Metrics | None = None,
               logprobs: list[Any] | None = None, model: str = "m") -> ChatChunk:
    return ChatChunk(model, "t", content, thinking, tool_calls, done, done_reason, metrics,
                     logprobs, {})


def test_accumulator_concatenates_and_collects_from_every_chunk() -> None:
    a, b, c = (ToolCall("a", {"n": 1}, "call_1", 0), ToolCall("b", {}, "call_2", 1),
               ToolCall("c", {"z": [1]}))
    acc = ChatAccumulator()
    chunks = [
        make_chunk(thinking="Hmm"), make_chunk(thinking=", ok."), make_chunk(content="Let me"),
        make_chunk(tool_calls=(a,)), make_chunk(content=" check.", tool_calls=(b,)),
        make_chunk(done=True, done_reason="stop", tool_calls=(c,),
                   metrics=Metrics(eval_count=9, eval_duration=3)),
    ]
    for chunk in chunks:
        acc.add(chunk)
    result = acc.result()
    assert result.message == Message("assistant", "Let me check.", "Hmm, ok.", (), (a, b, c))
    assert result.done_reason == "stop"
    assert result.metrics == Metrics(eval_count=9, eval_duration=3)
    assert result.model == "m"
    assert acc.chunks == 6 and acc.done


def test_accumulator_message_before_done_is_the_partial_reply() -> None:
    acc = ChatAccumulator()
    acc.add(make_chunk(content="Hel"))
    assert acc.message == Message("assistant", "Hel")
    acc.add(make_chunk(content="lo"))
    assert acc.message.content == "Hello"
    assert acc.done is False and acc.metrics is None and acc.done_reason is None


def test_accumulated_message_is_ready_for_the_next_turn() -> None:
    acc, _ = accumulate(decode(whole(load("tool_calls_separate"))))
    wire = acc.message.to_dict()
    assert wire == {
        "role": "assistant",
        "thinking": "Need the weather.",
        "tool_calls": [
            {"id": "call_ab12cd34", "function": {"index": 0, "name": "get_weather",
                                                 "arguments": {"city": "Tokyo"}}},
            {"id": "call_ef56gh78", "function": {"index": 1, "name": "get_time",
                                                 "arguments": {"tz": "Asia/Tokyo",
                                                               "format": {"h24": True}}}},
            {"id": "call_ij90kl12", "function": {"index": 2, "name": "get_weather",
                                                 "arguments": {"city": "Paris"}}},
        ],
    }
    assert Message.from_dict(wire) == acc.message


def test_accumulator_collects_logprobs() -> None:
    acc, _ = accumulate(decode(whole(load("unknown_fields"))))
    assert acc.result().logprobs is not None
    assert [entry["token"] for entry in acc.result().logprobs or []] == ["Hi", "!"]


def test_accumulator_keeps_model_from_first_chunk_when_final_has_none() -> None:
    acc = ChatAccumulator()
    acc.add(make_chunk(content="x", model="qwen3"))
    acc.add(make_chunk(done=True, model=""))
    assert acc.result().model == "qwen3"


# -- fuzz ------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=20,
)
chunk_like = st.fixed_dictionaries({}, optional={
    "model": json_values, "created_at": json_values, "done": json_values,
    "done_reason": json_values, "eval_count": json_values, "eval_duration": json_values,
    "logprobs": json_values, "error": json_values,
    "message": json_values | st.fixed_dictionaries({}, optional={
        "role": json_values, "content": json_values, "thinking": json_values,
        "tool_calls": json_values | st.lists(st.fixed_dictionaries({}, optional={
            "id": json_values, "function": json_values | st.fixed_dictionaries({}, optional={
                "name": json_values, "arguments": json_values, "index": json_values})}),
            max_size=3),
    }),
})


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_fuzz_arbitrary_bytes_only_ever_raise_protocol_error(data: bytes, step: int) -> None:
    decoder = NDJSONDecoder(max_line_bytes=200)
    try:
        for i in range(0, len(data), step):
            for obj in decoder.feed(data[i:i + step]):
                parse_chat_chunk(obj)
        for obj in decoder.close():
            parse_chat_chunk(obj)
    except (ProtocolError, StreamError):
        pass


@settings(max_examples=500, deadline=None, derandomize=True)
@given(chunk_like)
def test_fuzz_chunk_shapes_parse_or_raise_protocol_errors_only(obj: dict[str, Any]) -> None:
    try:
        chunk = parse_chat_chunk(obj)
    except (ProtocolError, StreamError):
        return
    assert isinstance(chunk.content, str) and isinstance(chunk.thinking, str)
    assert all(isinstance(call, ToolCall) and isinstance(call.arguments, dict)
               for call in chunk.tool_calls)
    ChatAccumulator().add(chunk)
