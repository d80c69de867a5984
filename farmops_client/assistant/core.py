"""The governed run without I/O: a generator of effects that the sync and the asyncio drivers execute.

:func:`governed_run` holds every rule of a run (what is reserved when, what the model is sent, what
a tool call does, when the hold grows, how the run settles whatever happens) and performs no I/O.
It yields *effects* and receives their results:

- :class:`Db`: one short pipelined transaction of function calls or statements (the driver borrows
  a pooled connection for it and returns it: no connection is held during a model call);
- :class:`Embed`: one text's vector; :class:`CountTokens`: a provider's token count or ``None``;
- :class:`ModelCall`: one Converse (or ConverseStream, fed into a :class:`StreamAssembler`) call;
- :class:`RunServiceTool`: a tool of the service's own, run by its handler;
- :class:`Emit`: an event for ``ask_stream`` consumers (text deltas come from the driver).

A failing effect is thrown back into the generator at its ``yield`` (a typed
:class:`~farmops_client.errors.FarmopsError`, a botocore error, or a cancellation). The drivers are
:func:`farmops_client.assistant.run.ask` / ``ask_stream`` and their twins in :mod:`farmops_client.aio`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from botocore.exceptions import BotoCoreError, ClientError

from .. import knowledge
from ..errors import (
    InsufficientCredits,
    InvalidPayload,
    ModelCallFailed,
    RunAwaitsApproval,
    SuggestOnly,
    UnknownRecordType,
)
from . import guarding, sizing, steps
from .tools import REMEMBER_TOOL, SEARCH_TOOL, Outcome, ToolCall

DEFAULT_MODEL = "amazon.nova-lite-v1:0"
SUMMARY_CHARS = 4000
SYSTEM_PROMPT = (
    "You are the farm assistant of FarmOps Desk. Answer briefly. Record facts only through the tools; "
    "every write you propose is checked by the farm's autonomy rules, and the tool result tells you "
    "whether it was drafted for confirmation, written, or not allowed. Use the context passages when "
    "they are relevant and say so when they are not."
)
#: stopReasons after which the model's answer is complete.
FINISHED = ("end_turn", "stop_sequence", "max_tokens")
#: How long a client reuses the record types' tool specs (``farmops.register_record_type`` adds
#: types rarely; a proposal of an unknown type, or ``client.cache.clear()``, drops them at once).
TOOL_SPECS_TTL = 300.0


# -- effects ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """``farmops.<function>(p_x => ...)`` with named arguments (``casts`` maps a name to a SQL type)."""

    function: str
    kwargs: dict[str, Any]
    casts: dict[str, str] | None = None


@dataclass(frozen=True)
class Statement:
    """A statement of the client's own (dict params)."""

    query: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Db:
    """One short transaction with the tenant context, pipelined: every step's rows, in order.

    ``context=False``: the steps check membership themselves (``reserve_screened_run``), so the driver sends
    the tenant context only for a session on an identity token, and otherwise runs the one call alone.
    """

    steps: tuple[Call | Statement, ...]
    context: bool = True
    #: The run's settle: the asyncio driver shields it from a second cancellation.
    settle: bool = False
    #: False: the commit does not wait for its WAL flush (``synchronous_commit = off`` for this
    #: transaction only), for a step whose loss in a server crash costs nothing: a run's start and
    #: first retrieval (a crashed run is expired and refunded; its next commit flushes this one).
    durable: bool = True


@dataclass(frozen=True)
class Embed:
    """The session's embedder on one text: ``(vector, tokens)``, the tokens the provider reported for it
    (``None`` when the embedder calls no provider: nothing to meter)."""

    text: str


@dataclass(frozen=True)
class CountTokens:
    """The provider's input-token count of ``request`` (Bedrock CountTokens), or ``None``."""

    request: dict[str, Any]


@dataclass(frozen=True)
class ModelCall:
    """One Converse call (``stream``: ConverseStream, whose events feed ``assembler``); the response.

    ``run_id``: the run it serves (a stream driver screens the text streamed so far against it).
    """

    request: dict[str, Any]
    stream: bool
    assembler: StreamAssembler | None = None
    run_id: UUID | None = None


@dataclass(frozen=True)
class RunServiceTool:
    """A toolUse of one of the service's own tools: its handler's answer (a string or JSON-able value)."""

    tool: Tool
    payload: dict[str, Any]


@dataclass(frozen=True)
class Emit:
    """An event for ``ask_stream`` consumers (``ask`` drops it)."""

    event: Any


Effect = Db | Embed | CountTokens | ModelCall | RunServiceTool | Emit


# -- events of ask_stream -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TextDelta:
    """A piece of the model's answer, screened for the farm before it is yielded (see
    :mod:`.streaming`): the pieces of a run join into a prefix of its ``Finished`` answer."""

    text: str


@dataclass(frozen=True)
class ToolOutcome:
    """A toolUse the model made and what the database (or the service's handler) did with it."""

    call: ToolCall


@dataclass(frozen=True)
class Finished:
    """The last event: the settled run."""

    result: AskResult


# -- service tools ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    """A tool of the service's own: a Converse ``toolSpec`` and the handler that answers it.

    The handler takes the model's input (a dict) and returns the text (or a JSON-able value) the
    model reads; in :mod:`farmops_client.aio` it may be a coroutine function. An exception it raises
    is the tool's error result, never the run's failure.
    """

    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Callable[[dict[str, Any]], Any]

    @property
    def spec(self) -> dict[str, Any]:
        """The Converse ``toolSpec``."""
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": {"json": self.input_schema},
        }


# -- the result ---------------------------------------------------------------------------------------
@dataclass
class AskResult:
    """What a governed run returns."""

    run_id: UUID | None  # None when the input guards refused the message (status "blocked")
    status: str
    text: str
    stop_reason: str | None
    drafts: list[UUID] = field(default_factory=list)
    records: list[UUID] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    retrievals: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int = 0
    credits_reserved: int = 0
    credits_actual: int | None = None
    credits_shortfall: int = 0
    error: str | None = None
    #: Model calls made (each one's hold was in place before it was sent).
    model_calls: int = 0
    #: True when the hold could not grow for a further model call: the run stopped there and settled.
    credits_exhausted: bool = False
    #: True when the request id named a finished run: its stored result, no model call, no charge.
    replayed: bool = False
    #: The conversation, the history given plus this run's turns: pass it as ``history=`` to continue.
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: What the guards decided: "input", "output", "guardrail" (see :mod:`.guarding`).
    screening: dict[str, Any] = field(default_factory=dict)

    @property
    def credits_charged(self) -> int:
        """Credits actually taken from the balance (actual minus the recorded shortfall)."""
        return (self.credits_actual or 0) - (self.credits_shortfall or 0)

    def record(self, call: ToolCall) -> None:
        """Keep one tool call and file what the database did with it."""
        self.tool_calls.append(call)
        if call.outcome is Outcome.DRAFTED:
            self.drafts.append(call.draft_id)
        elif call.outcome is Outcome.WRITTEN:
            self.records.append(call.record_id)
        elif call.outcome is Outcome.REFUSED:
            self.refused.append(call.name)


# -- the plan of one run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """Everything one run was asked to do, validated (see ``ask``'s arguments)."""

    farm_id: UUID
    user_id: str
    prompt: str
    feature: str = "assistant"
    model: str = DEFAULT_MODEL
    max_tokens: int = 512
    max_input_tokens: int | None = None
    k: int = 4
    max_tool_turns: int = 4
    request_id: str | None = None
    ttl: str = "15 minutes"
    system: tuple[str, ...] = (SYSTEM_PROMPT,)
    inference_config: dict[str, Any] = field(default_factory=dict)
    additional_model_request_fields: dict[str, Any] | None = None
    tools: tuple[str | Tool, ...] | None = None
    history: tuple[dict[str, Any], ...] = ()
    stream: bool = False
    embedder_model: str = ""
    #: Converse's ``guardrailConfig`` (a Bedrock Guardrail), or None.
    guardrail: dict[str, Any] | None = None


def answer_text(texts: list[str]) -> str:
    """The answer of a run from the text blocks of its model calls, in order (what is screened,
    stored and returned; a stream screens the same composition of what it has so far)."""
    return "\n".join(texts).strip()


def summary(text: str | None) -> str | None:
    """A text as the run row keeps it (NUL-free, at most :data:`SUMMARY_CHARS`)."""
    return None if text is None else text.replace("\x00", "")[:SUMMARY_CHARS]


def error_text(exc: BaseException) -> str:
    """One line naming an error (a botocore ClientError by its code)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


def verdict(stop_reason: str | None, max_tool_turns: int) -> tuple[str, str | None]:
    """The run's status and error from how the model stopped."""
    if stop_reason in FINISHED:
        return "succeeded", None
    if stop_reason == "tool_use":
        return "failed", f"tool turn limit reached ({max_tool_turns})"
    # guardrail_intervened, content_filtered, or a reason this client does not know
    return "failed", f"stopped by the model: {stop_reason}"


def context_block(passages: list[dict[str, Any]]) -> str:
    """Retrieved passages as the model reads them."""
    if not passages:
        return "No context passages matched."
    lines = ["Context passages (retrieved for this question):"]
    for i, p in enumerate(passages, 1):
        lines.append(f"[{i}] ({p.get('source')}, score {float(p.get('score') or 0):.2f}) {p.get('content')}")
    return "\n".join(lines)


# -- usage and streams --------------------------------------------------------------------------------
@dataclass
class Usage:
    """Tokens the provider reported so far, over every call of one run."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def add(self, response: dict[str, Any]) -> None:
        """Count one Converse response (or an assembled stream)."""
        reported = response.get("usage") or {}
        self.calls += 1
        self.input_tokens += int(reported.get("inputTokens", 0))
        self.output_tokens += int(reported.get("outputTokens", 0))


class StreamAssembler:
    """ConverseStream events -> the response Converse would have returned (no I/O).

    ``usage`` stays ``None`` until the stream's final ``metadata`` event: a stream cut before it
    never reported, and the run settles that call at its held upper bound.
    """

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.tool_inputs: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.metrics: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> str | None:
        """Take one event; returns the text delta it carried, if any."""
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use is not None:
                self.blocks[start["contentBlockIndex"]] = {"toolUse": {**use, "input": {}}}
                self.tool_inputs[start["contentBlockIndex"]] = []
        elif "contentBlockDelta" in event:
            delta = event["contentBlockDelta"]
            index = delta.get("contentBlockIndex", 0)
            body = delta.get("delta", {})
            if "text" in body:
                block = self.blocks.setdefault(index, {"text": ""})
                block["text"] = block.get("text", "") + body["text"]
                return body["text"]
            if "toolUse" in body:
                self.tool_inputs.setdefault(index, []).append(body["toolUse"].get("input", ""))
        elif "messageStop" in event:
            self.stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self.usage = event["metadata"].get("usage") or {}
            self.metrics = event["metadata"].get("metrics")
        return None

    def response(self) -> dict[str, Any]:
        """The assembled Converse-shaped response."""
        import json

        content = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if "toolUse" in block:
                raw = "".join(self.tool_inputs.get(index, []))
                block["toolUse"]["input"] = json.loads(raw) if raw else {}
            content.append(block)
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.stop_reason,
            "usage": self.usage or {},
        }


def stream_events(events: Any) -> Iterator[dict[str, Any]]:
    """A botocore event stream's events; a connection that breaks mid-way is botocore's
    ``ResponseStreamingError`` (a BotoCoreError: the run fails as a model call failure)."""
    from botocore.exceptions import ResponseStreamingError
    from urllib3.exceptions import HTTPError

    iterator = iter(events)
    while True:
        try:
            event = next(iterator)
        except StopIteration:
            return
        except HTTPError as exc:
            raise ResponseStreamingError(error=exc) from exc
        yield event


# -- tools --------------------------------------------------------------------------------------------
def tool_specs(plan: Plan, cache: dict[str, Any]) -> Generator[Effect, Any, list[dict[str, Any]]]:
    """The Converse tool specs of this run: the record types' (cached in ``cache`` for
    :data:`TOOL_SPECS_TTL` seconds), remember, search, and the service's own, as ``plan.tools`` chose."""
    cached = cache.get("tool_specs")
    if cached is not None and cached[0] > time.monotonic():
        farm_specs = cached[1]
    else:
        (rows,) = yield Db((Call("record_type_tools", {}),))
        record_specs = [
            {
                "toolSpec": {
                    "name": f"create_{row['name']}",
                    "description": row["description"] or f"Record a {row['name']} ({row['class']}).",
                    "inputSchema": {"json": row["input_schema"]},
                }
            }
            for row in rows
        ]
        farm_specs = [*record_specs, {"toolSpec": REMEMBER_TOOL}, {"toolSpec": SEARCH_TOOL}]
        cache["tool_specs"] = (time.monotonic() + TOOL_SPECS_TTL, farm_specs)
    if plan.tools is None:
        return farm_specs
    by_name = {spec["toolSpec"]["name"]: spec for spec in farm_specs}
    chosen: list[dict[str, Any]] = []
    for tool in plan.tools:
        if isinstance(tool, Tool):
            chosen.append({"toolSpec": tool.spec})
            continue
        name = tool if tool in by_name else f"create_{tool}"
        if name not in by_name:
            raise UnknownRecordType(f"no tool or record type named {tool!r}", sqlstate="OF203")
        chosen.append(by_name[name])
    return chosen


def run_tool(
    plan: Plan,
    run_id: UUID,
    name: str,
    payload: dict[str, Any],
    cache: dict[str, Any],
    ahead: Call | None = None,
    grown: list[dict[str, Any]] | None = None,
) -> Generator[Effect, Any, ToolCall]:
    """One toolUse: the service's handler, or the database (whose outcome the model reads).

    ``ahead``: ``farmops.try_extend_reservation`` for the next model call, pipelined in a proposal's
    transaction (no round trip of its own); its row is appended to ``grown`` (nothing when the tool
    made no such transaction, or the proposal was refused and rolled it back)."""
    own = {t.name: t for t in plan.tools or () if isinstance(t, Tool)}
    if name in own:
        try:
            answer = yield RunServiceTool(own[name], payload)
        except Exception as exc:  # the handler's failure is the tool's error result
            return ToolCall(name, payload, Outcome.REJECTED, f"failed: {exc}")
        text = answer if isinstance(answer, str) else _json(answer)
        return ToolCall(name, payload, Outcome.HANDLED, text)
    allowed = None if plan.tools is None else {t for t in plan.tools if isinstance(t, str)}
    if allowed is not None and name not in allowed and name.removeprefix("create_") not in allowed:
        return ToolCall(name, payload, Outcome.REJECTED, "not accepted: this tool was not offered")
    if name == SEARCH_TOOL["name"]:
        query = str(payload.get("query", ""))
        k = _small_int(payload.get("k"), plan.k)
        vector, tokens = yield Embed(query)
        (hits, *_) = yield Db(
            (_search_for_run(run_id, vector, plan.embedder_model, k), *_meter(plan, tokens, run_id))
        )
        return ToolCall(name, payload, Outcome.SEARCHED, context_block(hits), passages=len(hits))
    if name == REMEMBER_TOOL["name"]:
        fact = str(payload.get("fact", ""))
        if fact.strip():  # the database refuses unredacted PII in what is embedded
            (red,) = yield Db((Call("redact_pii_for_farm", {"text": fact}),))
            fact = red[0]["redacted"]
        vector, tokens = yield Embed(fact)
        try:
            (rows, *_) = yield Db(
                (
                    Statement(knowledge.STORE_MEMORY, _memory_args(fact, vector, plan, run_id)),
                    *_meter(plan, tokens, run_id),
                )
            )
        except InvalidPayload as exc:
            return ToolCall(name, payload, Outcome.REJECTED, f"not accepted: {exc}")
        memory_id = rows[0]["memory_id"]
        return ToolCall(
            name, payload, Outcome.REMEMBERED, f"remembered (memory {memory_id})", record_id=memory_id
        )
    record_type = name.removeprefix("create_")
    try:
        (rows, *extended) = yield Db((_propose(run_id, record_type, payload),) + ((ahead,) if ahead else ()))
        if grown is not None and extended:
            grown.append(extended[0][0])
    except SuggestOnly:
        return ToolCall(name, payload, Outcome.REFUSED, "not allowed: suggest only")
    except (InvalidPayload, UnknownRecordType) as exc:
        if isinstance(exc, UnknownRecordType):
            cache.pop("tool_specs", None)  # the model saw a type that is gone: fetch them again
        return ToolCall(name, payload, Outcome.REJECTED, f"not accepted: {exc}")
    row = rows[0]
    outcome = Outcome.WRITTEN if row["outcome"] == "auto_applied" else Outcome.DRAFTED
    if outcome is Outcome.WRITTEN:
        text = f"written (record {row['record_id']})"
    else:
        text = f"drafted for confirmation (draft {row['draft_id']})"
    return ToolCall(name, payload, outcome, text, draft_id=row["draft_id"], record_id=row["record_id"])


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


def _small_int(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, 1), 10)


def _memory_args(fact: str, vector: Any, plan: Plan, run_id: UUID) -> dict[str, Any]:
    return {"content": fact, "run_id": run_id, "embedding": vector, "model": plan.embedder_model}


def _meter(plan: Plan, tokens: int | None, run_id: UUID) -> tuple[Call, ...]:
    """``farmops.record_usage`` for an embedding that served the run (in the same pipelined transaction:
    no extra round trip; it counts under the run's feature), or nothing when no provider was called."""
    if tokens is None:
        return ()
    return (Call("record_usage", {"model": plan.embedder_model, "input_tokens": tokens, "run_id": run_id}),)


def _search_for_run(run_id: UUID, vector: Any, model: str, k: int) -> Call:
    return Call(
        "search_for_run", {"run_id": run_id, "query": vector, "model": model, "k": k}, {"query": "vector"}
    )


def _propose(run_id: UUID, record_type: str, payload: dict[str, Any]) -> Call:
    from psycopg.types.json import Jsonb

    return Call("propose_write", {"run_id": run_id, "record_type": record_type, "payload": Jsonb(payload)})


# -- the run ------------------------------------------------------------------------------------------
OPERATION, MODEL, PASSAGES = "gen_ai.operation.name", "gen_ai.request.model", "farmops.retrieval.passages"


def _said(message: dict[str, Any]) -> str:
    """The text of a message sent to the model (the tool results of a later turn), for its step."""
    parts = []
    for block in message.get("content", []):
        if "text" in block:
            parts.append(block["text"])
        for content in block.get("toolResult", {}).get("content", []):
            parts.append(content.get("text", ""))
    return "\n".join(parts)


def _request(plan: Plan, system: list[str], messages: list[dict[str, Any]], tools: list[dict[str, Any]]):
    request: dict[str, Any] = {
        "modelId": plan.model,
        # With a guardrail, the blocks after the system prompt (the retrieved context) are guarded.
        "system": [
            guarding.guard_content(text) if plan.guardrail and i > 0 else {"text": text}
            for i, text in enumerate(system)
        ],
        "messages": messages,
        "inferenceConfig": {"maxTokens": plan.max_tokens, **plan.inference_config},
    }
    if tools:
        request["toolConfig"] = {"tools": tools}
    if plan.additional_model_request_fields:
        request["additionalModelRequestFields"] = plan.additional_model_request_fields
    if plan.guardrail:
        request["guardrailConfig"] = plan.guardrail
    return request


def _call_bound(plan: Plan, request: dict[str, Any], counted: int | None) -> sizing.CallBound:
    if plan.max_input_tokens is not None:
        input_tokens = plan.max_input_tokens
    elif counted is not None:  # the provider's count, with a margin for what a template adds
        input_tokens = counted + counted // 10 + sizing.REQUEST_OVERHEAD_TOKENS
    else:
        input_tokens = sizing.estimate_input_tokens(request)
    return sizing.CallBound(input_tokens, sizing.output_bound(request))


def _bound_of(plan: Plan, request: dict[str, Any]) -> Generator[Effect, Any, sizing.CallBound]:
    """A call's bound: the caller's ``max_input_tokens``, else the provider's count, else the estimate."""
    if plan.max_input_tokens is not None:
        return _call_bound(plan, request, None)
    counted = yield CountTokens(request)
    return _call_bound(plan, request, counted)


#: A step's commit without the WAL flush wait (:attr:`Db.durable`), for its transaction only.
LAZY_COMMIT = Statement("SELECT pg_catalog.set_config('synchronous_commit', 'off', true)", {})
#: The governed run's first step: the input screen and the reservation in one call (one round trip).
RESERVE_SCREENED_RUN = """
SELECT s.verdict, s.categories, s.rule_names, s.redacted, s.event_id, (s.run).*
FROM farmops.reserve_screened_run(
    p_farm_id => %(farm_id)s, p_user_id => %(user_id)s, p_prompt => %(prompt)s, p_feature => %(feature)s,
    p_model => %(model)s, p_max_input_tokens => %(max_input_tokens)s,
    p_max_output_tokens => %(max_output_tokens)s, p_request_id => %(request_id)s, p_ttl => %(ttl)s::interval
) AS s"""
#: The governed run's last step: the guardrail's event, the output screen and the settle in one call.
FINISH_RUN = """
SELECT s.verdict, s.categories, s.rule_names, s.answer, s.guardrail_event_id, (s.run).*
FROM farmops.finish_run(
    p_run_id => %(run_id)s, p_status => %(status)s, p_answer => %(answer)s,
    p_input_tokens => %(input_tokens)s, p_output_tokens => %(output_tokens)s, p_latency_ms => %(latency_ms)s,
    p_error => %(error)s, p_guardrail_stage => %(guardrail_stage)s,
    p_guardrail_categories => %(guardrail_categories)s::text[]
) AS s"""
#: The run row's columns the run reads from the reservation.
RUN_COLUMNS = ("id", "status", "credits_reserved", "approval", "approval_rule")
#: How long a client reuses the count of a request without its messages (the system prompt and the
#: tools: most of a first call's input), keyed by model, system, tools and guardrail.
SKELETON_TTL = TOOL_SPECS_TTL


def _skeleton(plan: Plan, system: list[str], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The first request without history or prompt (one placeholder message): no user text."""
    placeholder = guarding.guard_content(".") if plan.guardrail else {"text": "."}
    return _request(plan, system, [{"role": "user", "content": [placeholder]}], tools)


def _skeleton_key(plan: Plan, system: list[str], tools: list[dict[str, Any]]) -> str:
    import hashlib
    import json

    shape = [plan.model, system, tools, bool(plan.guardrail), plan.additional_model_request_fields]
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=repr).encode()).hexdigest()


def _first_bound(
    plan: Plan, system: list[str], tools: list[dict[str, Any]], cache: dict[str, Any]
) -> Generator[Effect, Any, tuple[sizing.CallBound, float]]:
    """The first call's bound for the reservation, before the prompt is screened, so without any of
    the user's text leaving: the caller's ``max_input_tokens``; else the skeleton's bound (the system
    prompt and the tools, no history, no prompt: :func:`_skeleton`; the provider's count, cached per
    client for :data:`SKELETON_TTL`, or the estimate for a model that cannot count) plus the
    conservative estimate of the history and the prompt, computed here (no I/O).

    Also the input tokens a byte of text is to be held at ahead of a count (:data:`SEARCH_AND_GROW`):
    the skeleton's count per byte of it with the count's 10% margin, at most 1 (the byte rule of
    :mod:`.sizing`, which is what a model that cannot count is held at)."""
    if plan.max_input_tokens is not None:
        return sizing.CallBound(plan.max_input_tokens, plan.max_tokens), 1.0
    user = sizing.estimate_input_tokens(
        {"messages": [*plan.history, {"role": "user", "content": [{"text": plan.prompt}]}]}
    )
    request = _skeleton(plan, system, tools)
    key = _skeleton_key(plan, system, tools)
    known = cache.get("skeletons", {}).get(key)
    if known is not None and known[0] > time.monotonic():
        return sizing.CallBound(known[1] + user, plan.max_tokens), known[2]
    counted = yield CountTokens(request)
    bound = _call_bound(plan, request, counted)
    per_byte = 1.0
    if counted is not None:  # a count is kept (an estimate costs nothing to make again)
        per_byte = min(1.0, 1.1 * counted / max(1, sizing.request_bytes(request)))
        skeletons = cache.setdefault("skeletons", {})
        if len(skeletons) >= 64:
            skeletons.clear()
        skeletons[key] = (time.monotonic() + SKELETON_TTL, bound.input_tokens, per_byte)
    return sizing.CallBound(bound.input_tokens + user, plan.max_tokens), per_byte


#: What one tool result may add to the next request, in bytes, for growing its hold ahead: the
#: database's answers to a proposal are short ("drafted for confirmation (draft <id>)"); a longer
#: one (a rejection's reason) only means the cover check grows the hold again before the call.
TOOL_RESULT_BYTES = 512


def _ahead(
    plan: Plan, usage: Usage, bound: sizing.CallBound, message: dict[str, Any], uses: int
) -> sizing.RunBound:
    """What the hold must cover for the call after this turn's tools: the tokens reported so far plus
    the next request's bound, which is this call's bound plus what the turn adds (the model's message
    and the tool results, by the byte rule of :mod:`.sizing`, with the 10% margin of a count)."""
    import json

    added = len(json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=repr).encode())
    added += uses * TOOL_RESULT_BYTES + 2 * sizing.MESSAGE_OVERHEAD_TOKENS
    return sizing.RunBound(
        usage.input_tokens + bound.input_tokens + added + added // 10,
        usage.output_tokens + plan.max_tokens,
    )


def _try_extend(run_id: UUID, need: sizing.RunBound) -> Call:
    return Call(
        "try_extend_reservation",
        {
            "run_id": run_id,
            "cover_input_tokens": need.input_tokens,
            "cover_output_tokens": need.output_tokens,
        },
    )


#: The run's first retrieval with the hold grown for the context block its passages make, in the
#: same statement (no round trip of its own before the first model call): ``farmops.search_for_run``,
#: then ``farmops.try_extend_reservation`` to the reserved input bound plus the block's bytes held at
#: ``per_byte`` tokens each (:func:`_first_bound`: the provider's count per byte of the system prompt
#: and tools with a 10% margin, or 1, the byte rule of :mod:`.sizing`, for a model that cannot
#: count). The block's bytes: per passage returned, its content's and source's bytes as JSON text
#: (``to_json`` escapes as ``json.dumps`` does) and :data:`PASSAGE_BYTES` of framing, plus
#: :data:`CONTEXT_BLOCK_BYTES` once. Nothing is added when no passage was found (the line saying so
#: is the cover check's to add, as before).
#:
#: This grow is a guess ahead, never the guarantee: the cover check before the call still grows the
#: hold to the provider's count of the real request (or stops the run) when the guess fell short or
#: was refused. A refusal (``grown_refused``) writes nothing and is no error. The commit waits for
#: its WAL flush when the hold grew (money moved), whatever the step's ``durable`` said. One row per
#: passage in rank order, or one row of NULL passage columns when none was found.
SEARCH_AND_GROW = """
WITH hits AS MATERIALIZED (
    SELECT h.id, h.source, h.content, h.score, h.source_type, h.source_id, h.chunk_index, h.is_global,
        h.ordinality AS passage
    FROM farmops.search_for_run(
        p_run_id => %(run_id)s, p_query => %(query)s::vector, p_model => %(model)s, p_k => %(k)s
    ) WITH ORDINALITY AS h
),
cover AS MATERIALIZED (
    SELECT LEAST(
        %(cover_input_tokens)s::bigint + CASE WHEN pg_catalog.count(*) = 0 THEN 0 ELSE
            pg_catalog.ceil(%(per_byte)s::float8 * (%(block_bytes)s + pg_catalog.sum(
                pg_catalog.octet_length(pg_catalog.to_json(h.content)::text)
                + pg_catalog.octet_length(pg_catalog.to_json(h.source)::text) + %(passage_bytes)s
            )))::bigint
        END,
        2147483647
    )::integer AS input_tokens
    FROM hits AS h
),
grown AS MATERIALIZED (
    SELECT g.held, g.refused, c.input_tokens,
        CASE WHEN g.extended THEN pg_catalog.set_config('synchronous_commit', 'on', true) END AS durable
    FROM cover AS c
    CROSS JOIN LATERAL farmops.try_extend_reservation(
        p_run_id => %(run_id)s, p_cover_input_tokens => c.input_tokens,
        p_cover_output_tokens => %(cover_output_tokens)s
    ) AS g
)
SELECT g.held AS grown_held, g.refused AS grown_refused, g.input_tokens AS grown_input_tokens,
    g.durable AS grown_durable, h.id, h.source, h.content, h.score, h.source_type, h.source_id,
    h.chunk_index, h.is_global
FROM grown AS g LEFT JOIN hits AS h ON true
ORDER BY h.passage"""
#: A passage's line in :func:`context_block` besides its content and source: ``[i] (``, ``, score
#: 0.00) `` and the escaped line break, 23 bytes with a rank of two digits and a negative score (the
#: four quotes ``to_json`` adds to content and source are counted too, and not sent).
PASSAGE_BYTES = 24
#: The context block's own bytes: its heading (47) and its framing as a system block (12, or 38 as a
#: guardrail's guardContent).
CONTEXT_BLOCK_BYTES = 96
#: The columns of :data:`SEARCH_AND_GROW` that are the grow's, not a passage's.
GROWN_COLUMNS = ("grown_held", "grown_refused", "grown_input_tokens", "grown_durable")


def _search_and_grow(
    run_id: UUID, vector: Any, plan: Plan, covered: sizing.RunBound, per_byte: float
) -> Statement:
    return Statement(
        SEARCH_AND_GROW,
        {
            "run_id": run_id,
            "query": vector,
            "model": plan.embedder_model,
            "k": plan.k,
            "cover_input_tokens": covered.input_tokens,
            "cover_output_tokens": covered.output_tokens,
            "block_bytes": CONTEXT_BLOCK_BYTES,
            "passage_bytes": PASSAGE_BYTES,
            "per_byte": per_byte,
        },
    )


def _grown_hits(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:data:`SEARCH_AND_GROW`'s rows as the passages (as ``search_for_run`` returns them) and the grow."""
    grown = {k: rows[0][k] for k in GROWN_COLUMNS}
    hits = [{k: v for k, v in row.items() if k not in GROWN_COLUMNS} for row in rows if row["id"] is not None]
    return hits, grown


def governed_run(plan: Plan, cache: dict[str, Any]) -> Generator[Effect, Any, AskResult]:
    """One governed run (see the module docstring of :mod:`farmops_client.assistant.run`)."""
    tools = yield from tool_specs(plan, cache)
    system = list(plan.system)
    # 1. ONE call screens the prompt (the input guards, the farm's PII redaction) and, unless it is
    # blocked, reserves the first call's bound (farmops.reserve_screened_run). The prompt is not
    # screened yet, so no user text goes to Bedrock for that bound (:func:`_first_bound`: CountTokens
    # of the system prompt and tools only, once per client and TTL); the cover check before each
    # model call grows the hold to the real count, with the context passages.
    bound, per_byte = yield from _first_bound(plan, system, tools, cache)
    covered = sizing.RunBound(bound.input_tokens, bound.output_tokens)
    reserve = Statement(
        RESERVE_SCREENED_RUN,
        {
            "farm_id": plan.farm_id,
            "user_id": plan.user_id,
            "prompt": plan.prompt,
            "feature": plan.feature,
            "model": plan.model,
            "max_input_tokens": covered.input_tokens,
            "max_output_tokens": covered.output_tokens,
            "request_id": plan.request_id or str(uuid.uuid4()),
            "ttl": plan.ttl,
        },
    )
    rec = steps.RunRecorder(plan.farm_id, plan.prompt, model=plan.model, feature=plan.feature,
                            max_tokens=plan.max_tokens)  # fmt: skip
    span = rec.start("farmops.reserve")
    try:
        (rows,) = yield Db((reserve,), context=False)
    except BaseException as exc:
        rec.finish(AskResult(run_id=None, status="failed", text="", stop_reason=None), exc)
        raise
    screened = rows[0]
    if screened["verdict"] == "block":  # recorded, never sent, nothing reserved or charged
        rec.end(span, {"farmops.guard.verdict": "block"})
        refused = AskResult(None, "blocked", guarding.INPUT_REFUSAL, None)
        refused.screening = guarding.input_screening(screened)
        rec.finish(refused)
        yield Emit(Finished(refused))
        return refused
    prompt = screened["redacted"]
    user = guarding.guard_content(prompt) if plan.guardrail else {"text": prompt}
    messages: list[dict[str, Any]] = [*plan.history, {"role": "user", "content": [user]}]
    rec.end(span)
    run = {k: screened[k] for k in RUN_COLUMNS}
    rec.reserved(run)
    if run.get("approval") == "pending":  # held by a require_approval policy: the model is not called
        held = RunAwaitsApproval(
            f"run {run['id']} awaits approval (policy {run['approval_rule']}); "
            "retry with the same request_id once an owner or manager approved it",
            run_id=run["id"],
            rule=run["approval_rule"],
        )
        rec.finish(AskResult(run_id=run["id"], status="awaiting_approval", text="", stop_reason=None), held)
        raise held
    result = AskResult(run_id=run["id"], status="running", text="", stop_reason=None)
    result.credits_reserved = run["credits_reserved"]
    result.screening = guarding.input_screening(screened)
    response: dict[str, Any] = {}
    if run["status"] != "reserved":  # the request id's run was started before: its stored result
        try:
            (stored,) = yield Db(
                (Call("replay_run", steps.replay_args(run["id"], plan.prompt, summary(plan.prompt))),)
            )
        except BaseException as exc:
            rec.finish(result, exc)
            raise
        steps.replayed(result, stored[0]["replay_run"])
        rec.finish(result)
        yield Emit(Finished(result))
        return result

    usage = Usage()
    in_flight: sizing.CallBound | None = None
    assembler: StreamAssembler | None = None
    texts: list[str] = []
    exhausted: str | None = None
    started = time.monotonic()
    status, error = "failed", "interrupted before the model answered"
    failure: BaseException | None = None
    interrupted: BaseException | None = None
    try:
        # 2. retrieve for the run (the prompt embedded outside any transaction)
        start = Call("start_run", {"run_id": result.run_id})
        claim = rec.input_args()  # the input step claims the run for this prompt
        steps_of_start = (start,) + ((Call("record_run_steps", claim),) if claim else ())
        if plan.k > 0:
            span = rec.start(f"embeddings {plan.embedder_model}", {OPERATION: "embeddings"})
            vector, tokens = yield Embed(prompt)
            rec.end(span)
            span = rec.start("farmops.retrieve", {MODEL: plan.embedder_model})
            metered = _meter(plan, tokens, result.run_id)  # money: then the commit waits for its flush
            if plan.max_input_tokens is None:  # the passages add to the first call's bound: grow it here
                search: Call | Statement = _search_and_grow(result.run_id, vector, plan, covered, per_byte)
            else:  # a fixed bound per call: the passages change nothing of it
                search = _search_for_run(result.run_id, vector, plan.embedder_model, plan.k)
            hits = (yield Db((*steps_of_start, search, *metered), durable=not metered))[len(steps_of_start)]
            if isinstance(search, Statement):
                hits, grown = _grown_hits(hits)
                if grown["grown_refused"] is None:  # else the cover check below grows it, or stops
                    result.credits_reserved = grown["grown_held"]
                    covered = sizing.RunBound(
                        max(covered.input_tokens, grown["grown_input_tokens"]), covered.output_tokens
                    )
            rec.end(span, {PASSAGES: len(hits)})
        else:  # no retrieval asked for: no embedding, no context block
            span = rec.start("farmops.retrieve")
            yield Db(steps_of_start, durable=False)
            hits = []
            rec.end(span)
        rec.retrieved(hits)
        result.retrievals = hits
        if plan.k > 0:
            system = [*system, context_block(hits)]
        # 3. converse, the hold grown before each call to cover what was reported plus the call's bound
        stop_reason: str | None = None
        for turn in range(plan.max_tool_turns + 1):
            request = _request(plan, system, messages, tools)
            estimate = _call_bound(plan, request, None)
            need = sizing.RunBound(
                usage.input_tokens + estimate.input_tokens, usage.output_tokens + estimate.output_tokens
            )
            if not covered.covers(need):
                bound = yield from _bound_of(plan, request)
                need = sizing.RunBound(
                    usage.input_tokens + bound.input_tokens, usage.output_tokens + bound.output_tokens
                )
            else:
                bound = estimate
            if not covered.covers(need):
                try:
                    (grown,) = yield Db(
                        (
                            Call(
                                "extend_reservation",
                                {
                                    "run_id": result.run_id,
                                    "cover_input_tokens": need.input_tokens,
                                    "cover_output_tokens": need.output_tokens,
                                },
                            ),
                        )
                    )
                except InsufficientCredits as exc:
                    result.credits_exhausted = True
                    exhausted = f"credits exhausted before model call {result.model_calls + 1}: {exc}"
                    break
                result.credits_reserved = grown[0]["credits_reserved"]
                covered = need
            assembler = StreamAssembler() if plan.stream else None
            in_flight = bound
            said = None if turn == 0 else _said(messages[-1])
            observed = rec.model_started(turn, said)
            response = yield ModelCall(request, plan.stream, assembler, result.run_id)
            rec.model_done(observed, response)
            in_flight = None
            usage.add(response)
            result.model_calls += 1
            message = response["output"]["message"]
            stop_reason = response.get("stopReason")
            texts.extend(block["text"] for block in message.get("content", []) if "text" in block)
            messages.append(message)
            if stop_reason != "tool_use" or turn == plan.max_tool_turns:
                break
            results = []
            uses = [block["toolUse"] for block in message.get("content", []) if "toolUse" in block]
            # The next call's hold, grown in the last tool's transaction when it is a proposal.
            ahead = _ahead(plan, usage, bound, message, len(uses))
            for i, use in enumerate(uses):
                span = rec.start_tool(use["name"])
                last = i == len(uses) - 1 and not covered.covers(ahead)
                ahead_rows: list[dict[str, Any]] = []
                call = yield from run_tool(
                    plan, result.run_id, use["name"], dict(use.get("input") or {}), cache,
                    ahead=_try_extend(result.run_id, ahead) if last else None, grown=ahead_rows,
                )  # fmt: skip
                if ahead_rows and ahead_rows[0]["refused"] is None:
                    result.credits_reserved, covered = ahead_rows[0]["held"], ahead
                rec.tool_done(span, call)
                result.record(call)
                yield Emit(ToolOutcome(call))
                results.append(call.tool_result(use["toolUseId"]))
            messages.append({"role": "user", "content": results})
        result.stop_reason = stop_reason
        status, error = ("failed", exhausted) if exhausted else verdict(stop_reason, plan.max_tool_turns)
    except (ClientError, BotoCoreError) as exc:
        status, error, failure = "failed", error_text(exc), exc
    except BaseException as exc:  # cancellation, a consumer that stopped reading: settle, then re-raise
        status, error, interrupted = "failed", error_text(exc) if str(exc) else type(exc).__name__, exc
    if failure is not None or interrupted is not None:
        rec.failed(failure or interrupted)  # the span of the call that failed ends with it
    result.latency_ms = int((time.monotonic() - started) * 1000)
    if in_flight is not None:
        # The call was sent and never answered in full: what the provider reported, else its held bound.
        reported = assembler.usage if assembler is not None else None
        if reported is not None:
            usage.add({"usage": reported})
        elif failure is None or isinstance(failure, BotoCoreError):
            usage.input_tokens += in_flight.input_tokens
            usage.output_tokens += in_flight.output_tokens
        if assembler is not None:
            texts.extend(
                b["text"] for b in assembler.response()["output"]["message"]["content"] if "text" in b
            )
    result.text = answer_text(texts)
    result.messages = messages
    result.input_tokens, result.output_tokens = usage.input_tokens, usage.output_tokens
    result.status, result.error = status, error
    tokens = {
        "run_id": result.run_id,
        "status": status,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "latency_ms": result.latency_ms,
        "error": summary(error),
    }
    screens = failure is None and interrupted is None
    stage: str | None = None
    categories: list[str] | None = None
    if screens:
        # 4. ONE call: the guardrail's intervention recorded, the answer screened (a refusal when
        # blocked, PII redacted) and the run settled with the screened answer (farmops.finish_run).
        if result.stop_reason == "guardrail_intervened":
            stage, categories = guarding.guardrail_categories(response.get("trace"))
            categories = categories[:64]  # what finish_run records at most (a trace never names more)
        settle: Call | Statement = Statement(
            FINISH_RUN,
            {
                **tokens,
                "answer": result.text or None,
                "guardrail_stage": stage,
                "guardrail_categories": categories,
            },
        )
    else:  # a failed or interrupted call: settled as before, its partial text not screened
        settle = Call(
            "settle_run",
            {**tokens, "credits_actual": None, "output_summary": summary(result.text or None)},
        )
    settled: dict[str, Any] | None = None
    recorded = rec.pending_args()  # the run's steps, in the settle transaction (no extra round trip)
    span = rec.start("farmops.settle", {"farmops.run.status": status})
    try:
        (rows, *_) = yield Db(
            (settle,) + ((Call("record_run_steps", recorded),) if recorded else ()), settle=True
        )
        rec.end(span)
        settled = rows[0]
        if screens:
            _screened_output(result, settled, stage, categories)
        result.credits_actual = settled.get("credits_actual")
        result.credits_shortfall = settled.get("credits_shortfall") or 0
    except Exception as settle_exc:
        if interrupted is None:
            rec.finish(result, settle_exc)
            raise
        # Keep the original exception; the reservation expires and is refunded by expiry.
        interrupted.add_note(f"farmops: settling run {result.run_id} failed too: {settle_exc}")
    rec.finish(result, interrupted or failure)
    if interrupted is not None:
        raise interrupted
    if failure is not None:
        code = failure.response.get("Error", {}).get("Code") if isinstance(failure, ClientError) else None
        raise ModelCallFailed(
            f"model call failed, run {result.run_id} settled as failed: {error}",
            run_id=result.run_id,
            code=code,
            settled=settled,
            cause=failure,
        ) from failure
    if result.credits_exhausted and result.model_calls == 0:
        raise InsufficientCredits(
            f"not enough credits for the first model call; run {result.run_id} settled: {error}",
            sqlstate="OF101",
        )
    yield Emit(Finished(result))
    return result


def _screened_output(
    result: AskResult, finished: dict[str, Any], stage: str | None, categories: list[str] | None
) -> None:
    """What ``farmops.finish_run`` decided: the guardrail's event, the output screen, the answer."""
    if stage is not None:
        event = finished["guardrail_event_id"]
        result.screening["guardrail"] = {"stage": stage, "categories": categories, "event_id": event}
    if finished["verdict"] is not None:
        result.screening["output"] = {k: finished[k] for k in ("verdict", "categories", "rule_names")}
        result.text = finished["answer"]


# -- what the drivers share besides the run -----------------------------------------------------------
#: Bedrock error codes meaning "this model cannot count tokens": the client stops asking for it.
COUNT_UNSUPPORTED = ("ValidationException", "AccessDeniedException", "ResourceNotFoundException")


def count_tokens_args(request: dict[str, Any], cache: dict[str, Any], bedrock: Any) -> dict[str, Any] | None:
    """The arguments of Bedrock ``CountTokens`` for a Converse request, or ``None`` when the provider
    cannot count for this model (no such operation, or it said so before)."""
    if not hasattr(bedrock, "count_tokens") or request["modelId"] in cache.get("count_unsupported", ()):
        return None
    body = {
        k: request[k]
        for k in ("messages", "system", "toolConfig", "additionalModelRequestFields")
        if k in request
    }
    return {"modelId": request["modelId"], "input": {"converse": body}}


def counted(
    response: dict[str, Any] | None, error: BaseException | None, request: dict[str, Any], cache: dict
) -> int | None:
    """CountTokens' answer as a bound (``None``: use the estimate); remembers models that cannot count."""
    if error is not None:
        if (
            isinstance(error, ClientError)
            and error.response.get("Error", {}).get("Code") in COUNT_UNSUPPORTED
        ):
            cache.setdefault("count_unsupported", set()).add(request["modelId"])
        return None
    try:
        return int(response["inputTokens"])
    except (TypeError, KeyError, ValueError):
        return None
