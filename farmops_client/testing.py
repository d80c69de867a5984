"""Amazon Bedrock faked at the wire, for tests and the offline demo.

:class:`FakeBedrock` registers on a real botocore ``bedrock-runtime`` client's
``before-send`` event and answers each HTTP request with a real
:class:`botocore.awsrequest.AWSResponse`. Everything above the socket runs for real:
request serialization, SigV4 signing, response parsing, the standard-mode retry handler
(throttling and 5xx are retried, with backoff) and the mapping of ``x-amzn-ErrorType``
to ``ClientError`` codes. Nothing of farmops itself is patched.

Converse and ConverseStream requests are answered from one script of turns (consumed in order,
thread-safe), then from ``default`` (a callable or a fixed turn); a stream is encoded as AWS's
binary event stream (``application/vnd.amazon.eventstream``), so botocore decodes it for real.
CountTokens answers one token per four bytes of the request's JSON (rounded up), or a
ValidationException when built with ``count_tokens=False`` (a model that cannot count).
InvokeModel requests for Titan Text Embeddings V2 are answered with the offline lexical
embedder's vector, so retrieval behaves sensibly. Errors can be scripted in either stream.
Every request seen is recorded.

    fake = FakeBedrock([FakeBedrock.throttle(), FakeBedrock.text("hello")])
    fake.attach(client)
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSResponse

from .embeddings import DIMENSION, lexical_vector

STOP_REASONS = (
    "end_turn",
    "tool_use",
    "max_tokens",
    "stop_sequence",
    "guardrail_intervened",
    "content_filtered",
)


class _Raw(io.BytesIO):
    """The ``raw`` object botocore reads: ``read()`` for streaming bodies, ``stream()`` for content."""

    def stream(self, chunk_size: int = 1024, decode_content: bool = True):
        """Yield the body in chunks (urllib3's interface, used by ``AWSResponse.content``)."""
        while True:
            chunk = self.read(chunk_size)
            if not chunk:
                return
            yield chunk


def _pieces(text: str) -> list[str]:
    """A text cut after each space, as a model streams it."""
    pieces, start = [], 0
    for i, ch in enumerate(text):
        if ch == " ":
            pieces.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def _event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One message of AWS's binary event stream (prelude, CRCs, string headers, JSON payload)."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack("!I", zlib.crc32(message))


class _StreamRaw(_Raw):
    """An event-stream body, served one event per chunk: slow (``event_delay``) or dropped mid-way
    (``drop_after_events``: urllib3's ProtocolError, as a broken connection raises)."""

    def __init__(self, data: bytes, turn: Turn):
        super().__init__(data)
        self.turn = turn
        self.served = 0

    def stream(self, chunk_size: int = 1024, decode_content: bool = True):
        """Yield one event-stream message per chunk."""
        from urllib3.exceptions import ProtocolError

        data = self.getvalue()
        offset = 0
        while offset < len(data):
            if self.turn.drop_after_events is not None and self.served >= self.turn.drop_after_events:
                raise ProtocolError("Connection broken: the fake model dropped the stream")
            if self.turn.event_delay:
                time.sleep(self.turn.event_delay)
            (total,) = struct.unpack("!I", data[offset : offset + 4])
            yield data[offset : offset + total]
            offset += total
            self.served += 1


@dataclass(frozen=True)
class Turn:
    """One scripted answer: a Converse message, or an HTTP error (``status`` >= 400)."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    input_tokens: int = 10
    output_tokens: int = 5
    latency_ms: int = 120
    status: int = 200
    error_type: str | None = None
    message: str = ""
    #: Converse's ``trace`` (e.g. a guardrail's assessment), sent when set.
    trace: dict[str, Any] | None = None
    #: ConverseStream only: the connection drops after this many events (no final metadata).
    drop_after_events: int | None = None
    #: ConverseStream only: seconds to wait before each event (a slow model).
    event_delay: float = 0.0
    #: ConverseStream only: text deltas of this many characters (default: cut after each space).
    delta_chars: int | None = None


@dataclass(frozen=True)
class SeenRequest:
    """A request FakeBedrock answered: operation, model id, parsed JSON body, headers, answer."""

    operation: str
    model_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The Converse ``messages`` the client sent (empty for InvokeModel)."""
        return self.body.get("messages", [])

    def tool_results(self) -> list[dict[str, Any]]:
        """Every ``toolResult`` block in the last user message of this request."""
        if not self.messages:
            return []
        last = self.messages[-1]
        return [b["toolResult"] for b in last.get("content", []) if "toolResult" in b]


class FakeBedrock:
    """Scripted Bedrock Runtime answering at botocore's HTTP layer (see module docstring)."""

    #: Printed by the demo and the CLI whenever this fake answers instead of AWS.
    LABEL = "scripted Bedrock responses (FakeBedrock)"

    def __init__(
        self,
        script: Iterable[Turn] = (),
        *,
        default: Turn | Callable[[dict[str, Any]], Turn] | None = None,
        embed_errors: Iterable[Turn] = (),
        count_tokens: bool = True,
        delay: float = 0.0,
    ):
        #: Whether CountTokens is answered (else ValidationException: the model cannot count).
        self.count_tokens = count_tokens
        #: Seconds every Converse answer waits (a slow model), unless its turn says otherwise.
        self.delay = delay
        self._lock = threading.Lock()
        self._script: deque[Turn] = deque(script)
        self._embed_errors: deque[Turn] = deque(embed_errors)
        self.default = default if default is not None else self.text("(no scripted answer left)")
        self.requests: list[SeenRequest] = []

    # -- building turns -------------------------------------------------------------------------------
    @staticmethod
    def text(
        text: str,
        *,
        stop_reason: str = "end_turn",
        input_tokens: int = 10,
        output_tokens: int = 5,
        latency_ms: int = 120,
    ) -> Turn:
        """An assistant text answer with the given stopReason and usage."""
        if stop_reason not in STOP_REASONS:
            raise ValueError(f"unknown stopReason {stop_reason!r}")
        return Turn([{"text": text}], stop_reason, input_tokens, output_tokens, latency_ms)

    @staticmethod
    def tool_use(
        *calls: tuple[str, dict[str, Any]],
        text: str | None = None,
        input_tokens: int = 20,
        output_tokens: int = 15,
        latency_ms: int = 150,
    ) -> Turn:
        """An assistant message asking for one or more tools: ``tool_use(("create_sale", {...}))``."""
        content: list[dict[str, Any]] = [{"text": text}] if text else []
        for i, (name, payload) in enumerate(calls):
            content.append({"toolUse": {"toolUseId": f"tooluse_{name}_{i}", "name": name, "input": payload}})
        return Turn(content, "tool_use", input_tokens, output_tokens, latency_ms)

    @staticmethod
    def guardrail_intervened(
        text: str = "Sorry, the model cannot answer this question.",
        *,
        stage: str = "input",
        filters: Iterable[str] = ("PROMPT_ATTACK",),
        topics: Iterable[str] = (),
        guardrail_id: str = "fake-guardrail",
        input_tokens: int = 10,
        output_tokens: int = 0,
    ) -> Turn:
        """A Bedrock Guardrail intervention: stopReason ``guardrail_intervened``, the guardrail's
        blocked message, and a trace naming what matched (content filters, denied topics) on the
        ``input`` (the guardContent sent) or the ``output``."""
        assessment: dict[str, Any] = {}
        if filters:
            assessment["contentPolicy"] = {
                "filters": [{"type": f, "confidence": "HIGH", "action": "BLOCKED"} for f in filters]
            }
        if topics:
            denied = [{"name": n, "type": "DENY", "action": "BLOCKED"} for n in topics]
            assessment["topicPolicy"] = {"topics": denied}
        if stage == "input":
            guardrail = {"inputAssessment": {guardrail_id: assessment}}
        else:
            guardrail = {"outputAssessments": {guardrail_id: [assessment]}}
        trace = {"guardrail": guardrail}
        return Turn([{"text": text}], "guardrail_intervened", input_tokens, output_tokens, trace=trace)

    @staticmethod
    def error(error_type: str, status: int, message: str = "") -> Turn:
        """An HTTP error response carrying ``x-amzn-ErrorType: error_type``."""
        return Turn(status=status, error_type=error_type, message=message or f"fake {error_type}")

    @classmethod
    def throttle(cls, status: int = 429) -> Turn:
        """ThrottlingException (retried by botocore's standard mode)."""
        return cls.error("ThrottlingException", status, "Too many requests, please wait before trying again.")

    @classmethod
    def unavailable(cls) -> Turn:
        """ServiceUnavailableException, HTTP 503 (retried as a transient error)."""
        return cls.error("ServiceUnavailableException", 503, "Service unavailable.")

    @classmethod
    def model_timeout(cls) -> Turn:
        """ModelTimeoutException, HTTP 408 (not retried: fails the run)."""
        return cls.error("ModelTimeoutException", 408, "Model has timed out in processing the request.")

    @classmethod
    def validation(cls, message: str = "Malformed input request.") -> Turn:
        """ValidationException, HTTP 400."""
        return cls.error("ValidationException", 400, message)

    @classmethod
    def access_denied(cls) -> Turn:
        """AccessDeniedException, HTTP 403."""
        return cls.error("AccessDeniedException", 403, "You don't have access to the model.")

    # -- scripting --------------------------------------------------------------------------------------
    def push(self, *turns: Turn) -> FakeBedrock:
        """Append turns to the Converse script."""
        with self._lock:
            self._script.extend(turns)
        return self

    def push_embed_error(self, *turns: Turn) -> FakeBedrock:
        """Make the next InvokeModel calls fail with these errors."""
        with self._lock:
            self._embed_errors.extend(turns)
        return self

    @property
    def remaining(self) -> int:
        """Scripted Converse turns not consumed yet."""
        with self._lock:
            return len(self._script)

    def seen(self, operation: str | None = None) -> list[SeenRequest]:
        """Recorded requests, optionally only one operation ('Converse' or 'InvokeModel')."""
        with self._lock:
            return [r for r in self.requests if operation is None or r.operation == operation]

    # -- wiring ------------------------------------------------------------------------------------------
    def attach(self, client) -> FakeBedrock:
        """Answer every request of this botocore ``bedrock-runtime`` client from now on."""
        client.meta.events.register("before-send.bedrock-runtime", self._before_send)
        return self

    def detach(self, client) -> None:
        """Stop answering for this client (requests would go to AWS again)."""
        client.meta.events.unregister("before-send.bedrock-runtime", self._before_send)

    def _before_send(self, request, **_kwargs) -> AWSResponse:
        path = unquote(request.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0])
        parts = path.split("/")
        model_id = parts[1] if len(parts) > 1 else ""
        op = parts[-1] if parts else ""
        raw_body = request.body or b""
        if hasattr(raw_body, "read"):
            raw_body = raw_body.read()
        body = json.loads(raw_body) if raw_body else {}
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        stream_body: bytes | None = None
        if op in ("converse", "converse-stream"):
            operation = "Converse" if op == "converse" else "ConverseStream"
            with self._lock:
                turn = self._script.popleft() if self._script else None
            if turn is None:
                turn = self.default(body) if callable(self.default) else self.default
            if self.delay:
                time.sleep(self.delay)
            status, payload = self._converse_payload(turn)
            if op == "converse-stream" and status < 400:
                stream_body = b"".join(_event(name, data) for name, data in self._stream_events(turn))
        elif op == "count-tokens":
            operation = "CountTokens"
            turn = self.validation("The model does not support counting tokens.")
            if self.count_tokens:
                text = json.dumps(body.get("input", {}), ensure_ascii=False, separators=(",", ":"))
                status, payload = 200, {"inputTokens": -(-len(text.encode()) // 4)}
            else:
                status, payload = turn.status, {"message": turn.message}
        elif op == "invoke":
            operation = "InvokeModel"
            with self._lock:
                turn = self._embed_errors.popleft() if self._embed_errors else None
            if turn is None:
                status, payload = 200, self._embedding_payload(body)
            else:
                status, payload = turn.status, {"message": turn.message}
        else:
            operation = op
            turn = self.validation(f"FakeBedrock does not implement {op!r}")
            status, payload = turn.status, {"message": turn.message}
        response_headers = {"Content-Type": "application/json", "x-amzn-RequestId": "fake-request"}
        if status >= 400:
            response_headers["x-amzn-ErrorType"] = f"{turn.error_type}:http://internal.amazon.com/"
        with self._lock:
            self.requests.append(SeenRequest(operation, model_id, body, headers, status))
        if stream_body is not None:
            response_headers["Content-Type"] = "application/vnd.amazon.eventstream"
            raw = _StreamRaw(stream_body, turn)
            return AWSResponse(request.url, status, response_headers, raw)
        data = json.dumps(payload).encode()
        response_headers["Content-Length"] = str(len(data))
        return AWSResponse(request.url, status, response_headers, _Raw(data))

    @staticmethod
    def _stream_events(turn: Turn) -> list[tuple[str, dict[str, Any]]]:
        """The ConverseStream events of one turn: text in word-sized deltas, tool input as JSON text."""
        events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
        for index, block in enumerate(turn.content):
            if "text" in block:
                text, size = block["text"], turn.delta_chars
                for piece in (
                    _pieces(text) if size is None else [text[i : i + size] for i in range(0, len(text), size)]
                ):
                    events.append(
                        ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
                    )
            elif "toolUse" in block:
                use = block["toolUse"]
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
                delta = {"toolUse": {"input": json.dumps(use.get("input") or {})}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
        events.append(("messageStop", {"stopReason": turn.stop_reason}))
        usage = {
            "inputTokens": turn.input_tokens,
            "outputTokens": turn.output_tokens,
            "totalTokens": turn.input_tokens + turn.output_tokens,
        }
        events.append(("metadata", {"usage": usage, "metrics": {"latencyMs": turn.latency_ms}}))
        return events

    @staticmethod
    def _converse_payload(turn: Turn) -> tuple[int, dict[str, Any]]:
        if turn.status >= 400:
            return turn.status, {"message": turn.message}
        return 200, {
            "output": {"message": {"role": "assistant", "content": turn.content}},
            "stopReason": turn.stop_reason,
            "usage": {
                "inputTokens": turn.input_tokens,
                "outputTokens": turn.output_tokens,
                "totalTokens": turn.input_tokens + turn.output_tokens,
            },
            "metrics": {"latencyMs": turn.latency_ms},
            **({"trace": turn.trace} if turn.trace is not None else {}),
        }

    @staticmethod
    def _embedding_payload(body: dict[str, Any]) -> dict[str, Any]:
        text = str(body.get("inputText", ""))
        dimension = int(body.get("dimensions", DIMENSION))
        return {
            "embedding": lexical_vector(text, dimension),
            "inputTextTokenCount": max(1, len(text.split())),
        }


def fake_bedrock_client(fake: FakeBedrock | None = None, *, max_attempts: int = 3, region: str = "us-east-1"):
    """A real botocore ``bedrock-runtime`` client with dummy credentials, answered by ``fake``.

    Standard retry mode; note botocore's ``retries={"max_attempts": N}`` means N *retries*
    (N + 1 requests at most). Nothing leaves the machine.
    """
    import boto3
    from botocore.config import Config

    session = boto3.Session(aws_access_key_id="AKIDFAKE", aws_secret_access_key="fake", region_name=region)
    client = session.client(
        "bedrock-runtime",
        config=Config(retries={"mode": "standard", "max_attempts": max_attempts}),
    )
    (fake or FakeBedrock()).attach(client)
    return client
