"""The governed run: reserve, retrieve, converse with tools, settle (seed 001's whole loop).

Order of operations, each database step its own short committed transaction and no
transaction ever open during a network call:

1. ``farmops.estimate_credits`` + ``farmops.reserve_credits`` (commit): the upper bound of the
   whole run, ``max_tool_turns + 1`` model calls of ``max_input_tokens`` + ``max_tokens`` each at
   the model's rate, is reserved before anything is sent to Bedrock, so the run can never cost
   more than it reserved (no shortfall, no budget overrun under concurrency). Not enough
   credits -> :class:`InsufficientCredits`, nothing else happens. Lower ``max_tool_turns`` to
   reserve less; settle refunds whatever was not used.
2. the prompt is embedded (Titan Text Embeddings V2 or the offline embedder), then
   ``farmops.start_run`` + ``farmops.search_for_run`` (commit): retrieved passages are
   recorded as the run's retrievals and given to the model as context, along with the tools
   from ``farmops.record_type_tools()`` plus ``remember_fact`` and ``search_knowledge``.
3. Bedrock Converse, looping over ``tool_use`` up to ``max_tool_turns`` times. Each toolUse
   goes to the database in its own transaction (``farmops.propose_write``, ``farmops.remember``
   or ``farmops.search_for_run``); the tool result the model sees is the database's outcome.
4. ``farmops.settle_run`` in a ``finally`` that also runs on cancellation (``BaseException``),
   with the tokens, latency and status the provider reported; the price is computed by the
   database. If settling itself is impossible (process killed, database gone), the
   reservation expires and ``farmops.expire_reservations`` refunds it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from botocore.exceptions import BotoCoreError, ClientError
from pgvector import Vector
from psycopg.types.json import Jsonb

from .errors import FarmopsError, InvalidPayload, SuggestOnly, UnknownRecordType

if TYPE_CHECKING:
    from .client import TenantSession

DEFAULT_MODEL = "amazon.nova-lite-v1:0"
SUMMARY_CHARS = 4000
SYSTEM_PROMPT = (
    "You are the farm assistant of FarmOps Desk. Answer briefly. Record facts only through the tools; "
    "every write you propose is checked by the farm's autonomy rules, and the tool result tells you "
    "whether it was drafted for confirmation, written, or not allowed. Use the context passages when "
    "they are relevant and say so when they are not."
)
#: The database's outcome of propose_write, as the model reads it.
TOOL_OUTCOME_TEXT = {"drafted": "drafted for confirmation", "auto_applied": "written"}
REMEMBER_TOOL = {
    "name": "remember_fact",
    "description": "Store a durable fact about this farm (e.g. 'vaccinates on Mondays').",
    "inputSchema": {
        "json": {
            "type": "object",
            "properties": {"fact": {"type": "string", "description": "the fact, one sentence"}},
            "required": ["fact"],
        }
    },
}
SEARCH_TOOL = {
    "name": "search_knowledge",
    "description": "Search this farm's documents, memories and the shared knowledge base.",
    "inputSchema": {
        "json": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "k": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "required": ["query"],
        }
    },
}


class ModelCallFailed(FarmopsError):
    """Bedrock refused or failed the call (after botocore's retries); the run was settled as failed."""

    def __init__(
        self, message: str, *, run_id: UUID | None, code: str | None, settled: dict | None, cause=None
    ):
        super().__init__(message, cause=cause)
        self.run_id = run_id
        self.code = code
        self.settled = settled


@dataclass
class ToolCall:
    """One toolUse the model made and what the database answered."""

    name: str
    input: dict[str, Any]
    result: str
    status: str  # 'success' | 'error'
    draft_id: UUID | None = None
    record_id: UUID | None = None


@dataclass
class AskResult:
    """What a governed run returns."""

    run_id: UUID
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

    @property
    def credits_charged(self) -> int:
        """Credits actually taken from the balance (actual minus the recorded shortfall)."""
        return (self.credits_actual or 0) - (self.credits_shortfall or 0)


@dataclass
class _Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


def _summary(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.replace("\x00", "")
    return text[:SUMMARY_CHARS]


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


def _tools(t: TenantSession) -> list[dict[str, Any]]:
    with t.short_transaction() as conn:
        from . import db

        rows = db.call(conn, "record_type_tools")
    tools = [
        {
            "toolSpec": {
                "name": f"create_{row['name']}",
                "description": row["description"] or f"Record a {row['name']} ({row['class']}).",
                "inputSchema": {"json": row["input_schema"]},
            }
        }
        for row in rows
    ]
    return [*tools, {"toolSpec": REMEMBER_TOOL}, {"toolSpec": SEARCH_TOOL}]


def _search(t: TenantSession, run_id: UUID, query: str, k: int) -> list[dict[str, Any]]:
    from . import db

    vector = Vector(t.client.embedder.embed([query])[0])  # network call: outside any transaction
    with t.short_transaction() as conn:
        return db.call(conn, "search_for_run", {"query": "public.vector"}, run_id=run_id, query=vector, k=k)


def _context_block(passages: list[dict[str, Any]]) -> str:
    if not passages:
        return "No context passages matched."
    lines = ["Context passages (retrieved for this question):"]
    for i, p in enumerate(passages, 1):
        lines.append(f"[{i}] ({p.get('source')}, score {float(p.get('score') or 0):.2f}) {p.get('content')}")
    return "\n".join(lines)


def _run_tool(t: TenantSession, run_id: UUID, name: str, payload: dict[str, Any], k: int) -> ToolCall:
    """Send one toolUse to the database; the database's outcome becomes the tool result."""
    from . import db
    from .client import store_memory

    if name == "search_knowledge":
        query = str(payload.get("query", ""))
        hits = _search(t, run_id, query, int(payload.get("k") or k))
        return ToolCall(name, payload, _context_block(hits), "success")
    try:
        if name == "remember_fact":
            fact = str(payload.get("fact", ""))
            vector = Vector(t.client.embedder.embed([fact])[0])  # network call: outside any transaction
            with t.short_transaction() as conn:
                memory_id = store_memory(conn, fact, vector, t.client.embedder.model, run_id)
            return ToolCall(name, payload, f"remembered (memory {memory_id})", "success", record_id=memory_id)
        record_type = name.removeprefix("create_") if name.startswith("create_") else name
        with t.short_transaction() as conn:
            row = db.call(
                conn, "propose_write", run_id=run_id, record_type=record_type, payload=Jsonb(payload)
            )[0]
        outcome = row["outcome"]
        text = TOOL_OUTCOME_TEXT.get(outcome, outcome)
        ref = f"record {row['record_id']}" if row.get("record_id") else f"draft {row['draft_id']}"
        return ToolCall(
            name,
            payload,
            f"{text} ({ref})",
            "success",
            draft_id=row.get("draft_id"),
            record_id=row.get("record_id"),
        )
    except SuggestOnly:
        return ToolCall(name, payload, "not allowed: suggest only", "error")
    except (InvalidPayload, UnknownRecordType) as exc:
        return ToolCall(name, payload, f"not accepted: {exc}", "error")


def ask(
    t: TenantSession,
    prompt: str,
    *,
    feature: str = "assistant",
    max_tokens: int = 512,
    model: str | None = None,
    max_input_tokens: int | None = None,
    k: int = 4,
    max_tool_turns: int = 4,
    request_id: str | None = None,
    ttl: str = "15 minutes",
    system: str = SYSTEM_PROMPT,
    temperature: float | None = None,
) -> AskResult:
    """One governed assistant run for the session's user and farm (see the module docstring).

    Raises :class:`InsufficientCredits` before any model call when the farm cannot pay the
    upper bound, and :class:`ModelCallFailed` (after settling the run as failed, which refunds
    the unused reservation) when Bedrock refuses or fails the call.
    """
    from . import db

    bedrock = t.client.bedrock
    if bedrock is None:
        raise FarmopsError("no Bedrock client configured: pass bedrock= to farmops_client.connect()")
    model = model or t.client.model
    if max_input_tokens is None:
        # An upper bound for one call: the prompt (<= 1 token per byte) plus system, context and tools.
        max_input_tokens = len(prompt.encode("utf-8")) + 4096
    request_id = request_id or str(uuid.uuid4())
    model_calls = max_tool_turns + 1  # the first answer plus one call per tool turn

    # 1. reserve, committed before the model is called
    with t.short_transaction() as conn:
        credits = db.call(
            conn,
            "estimate_credits",
            model=model,
            max_input_tokens=max_input_tokens * model_calls,
            max_output_tokens=max_tokens * model_calls,
        )[0]["estimate_credits"]
        run = db.call(
            conn,
            "reserve_credits",
            {"ttl": "interval"},
            feature=feature,
            model=model,
            credits=credits,
            request_id=request_id,
            ttl=ttl,
            input_summary=_summary(prompt),
        )[0]
    run_id: UUID = run["id"]
    result = AskResult(run_id=run_id, status="running", text="", stop_reason=None)
    result.credits_reserved = run["credits_reserved"]
    usage = _Usage()
    started = time.monotonic()
    status, error = "failed", "interrupted before the model answered"
    failure: BaseException | None = None
    interrupted: BaseException | None = None
    settled: dict[str, Any] | None = None
    try:
        # 2. retrieve (the embedding call happens outside the transaction)
        vector = Vector(t.client.embedder.embed([prompt])[0])
        with t.short_transaction() as conn:
            db.call(conn, "start_run", run_id=run_id)
            result.retrievals = db.call(
                conn, "search_for_run", {"query": "public.vector"}, run_id=run_id, query=vector, k=k
            )
        tools = _tools(t)
        messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": prompt}]}]
        inference: dict[str, Any] = {"maxTokens": max_tokens}
        if temperature is not None:
            inference["temperature"] = temperature
        texts: list[str] = []
        # 3. converse, looping over tool use
        for turn in range(max_tool_turns + 1):
            response = bedrock.converse(
                modelId=model,
                system=[{"text": system}, {"text": _context_block(result.retrievals)}],
                messages=messages,
                toolConfig={"tools": tools},
                inferenceConfig=inference,
            )
            usage.calls += 1
            usage.input_tokens += int(response.get("usage", {}).get("inputTokens", 0))
            usage.output_tokens += int(response.get("usage", {}).get("outputTokens", 0))
            message = response["output"]["message"]
            result.stop_reason = response.get("stopReason")
            texts.extend(b["text"] for b in message.get("content", []) if "text" in b)
            if result.stop_reason != "tool_use":
                break
            messages.append(message)
            if turn == max_tool_turns:
                break
            results = []
            for block in message.get("content", []):
                if "toolUse" not in block:
                    continue
                use = block["toolUse"]
                call = _run_tool(t, run_id, use["name"], dict(use.get("input") or {}), k)
                result.tool_calls.append(call)
                if call.draft_id and not call.record_id:
                    result.drafts.append(call.draft_id)
                if call.record_id and call.name != "remember_fact":
                    result.records.append(call.record_id)
                if call.result == "not allowed: suggest only":
                    result.refused.append(call.name)
                results.append(
                    {
                        "toolResult": {
                            "toolUseId": use["toolUseId"],
                            "content": [{"text": call.result}],
                            "status": call.status,
                        }
                    }
                )
            messages.append({"role": "user", "content": results})
        result.text = "\n".join(texts).strip()
        if result.stop_reason in ("end_turn", "stop_sequence", "max_tokens"):
            status, error = "succeeded", None
        elif result.stop_reason == "tool_use":
            status, error = "failed", f"tool turn limit reached ({max_tool_turns})"
        else:  # guardrail_intervened, content_filtered, or a reason this client does not know
            status, error = "failed", f"stopped by the model: {result.stop_reason}"
    except (ClientError, BotoCoreError) as exc:
        status, error, failure = "failed", _error_text(exc), exc
    except BaseException as exc:  # cancellation included: settle, then re-raise
        status, error, interrupted = "failed", _error_text(exc), exc
        raise
    finally:
        # 4. settle with what the provider reported; the database computes the price
        result.latency_ms = int((time.monotonic() - started) * 1000)
        result.input_tokens, result.output_tokens = usage.input_tokens, usage.output_tokens
        result.status, result.error = status, error
        try:
            with t.short_transaction() as conn:
                settled = db.call(
                    conn,
                    "settle_run",
                    run_id=run_id,
                    status=status,
                    credits_actual=None,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    latency_ms=result.latency_ms,
                    output_summary=_summary(result.text or None),
                    error=_summary(error),
                )[0]
            result.credits_actual = settled.get("credits_actual")
            result.credits_shortfall = settled.get("credits_shortfall") or 0
        except Exception as settle_exc:
            if interrupted is None:
                raise
            # Keep the original exception; the reservation expires and is refunded by expiry.
            interrupted.add_note(f"farmops: settling run {run_id} failed too: {settle_exc}")
    if failure is not None:
        code = failure.response.get("Error", {}).get("Code") if isinstance(failure, ClientError) else None
        raise ModelCallFailed(
            f"model call failed, run {run_id} settled as failed: {error}",
            run_id=run_id,
            code=code,
            settled=settled,
            cause=failure,
        ) from failure
    return result


def tool_spec_json(tools: list[dict[str, Any]]) -> str:
    """The tools as pretty JSON (for ``farmops ask --show-tools`` and debugging)."""
    return json.dumps(tools, indent=2, default=str)
