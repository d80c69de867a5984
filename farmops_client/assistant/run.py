"""The governed run: reserve, retrieve, converse with tools, settle.

Order of operations, each database step its own short committed transaction of ONE round trip
(a fused call, or a pipelined transaction) and no transaction ever open during a network call:

1. ``farmops.reserve_run`` (autocommit; membership, price and reservation in one call): the upper
   bound of the whole run (:mod:`.sizing`) is reserved before anything is sent to Bedrock. Not
   enough credits -> :class:`InsufficientCredits`, nothing else happens. A session on an identity
   token pipelines ``begin_tenant_verified`` before it instead.
2. the prompt is embedded by the session's embedder, then ``farmops.start_run`` +
   ``farmops.search_for_run`` (pipelined): retrieved passages are recorded as the run's
   retrievals and given to the model as context, along with the tools (:mod:`.tools`, whose
   specs are cached by the client).
3. Bedrock Converse, looping over ``tool_use`` up to ``max_tool_turns`` times (:mod:`.converse`);
   each toolUse goes to the database in its own transaction and the model reads its outcome.
4. ``farmops.settle_run`` in a ``finally`` that also runs on cancellation (``BaseException``),
   with the tokens, latency and status the provider reported; the price is computed by the
   database. If settling itself is impossible (process killed, database gone), the
   reservation expires and ``farmops.expire_reservations`` refunds it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from botocore.exceptions import BotoCoreError, ClientError

from .. import credits, knowledge
from ..errors import ModelCallFailed, NotConfigured
from ..session import Session
from . import sizing, tools
from .converse import Reply, Usage, converse
from .tools import Outcome, ToolCall

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

    def record(self, call: ToolCall) -> None:
        """Keep one tool call and file what the database did with it."""
        self.tool_calls.append(call)
        if call.outcome is Outcome.DRAFTED:
            self.drafts.append(call.draft_id)
        elif call.outcome is Outcome.WRITTEN:
            self.records.append(call.record_id)
        elif call.outcome is Outcome.REFUSED:
            self.refused.append(call.name)


def _summary(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "")[:SUMMARY_CHARS]


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


def _verdict(reply: Reply, max_tool_turns: int) -> tuple[str, str | None]:
    """The run's status and error from how the model stopped."""
    if reply.stop_reason in FINISHED:
        return "succeeded", None
    if reply.stop_reason == "tool_use":
        return "failed", f"tool turn limit reached ({max_tool_turns})"
    # guardrail_intervened, content_filtered, or a reason this client does not know
    return "failed", f"stopped by the model: {reply.stop_reason}"


def ask(
    t: Session,
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

    ``max_input_tokens`` bounds one call's input (default: the prompt's bytes plus room for the
    system prompt, context and tools); the reservation covers ``max_tool_turns + 1`` calls.
    Raises :class:`InsufficientCredits` before any model call when the farm cannot pay that upper
    bound, and :class:`ModelCallFailed` (after settling the run as failed, which refunds the
    unused reservation) when Bedrock refuses or fails a call.
    """
    if t.bedrock is None:
        raise NotConfigured("no Bedrock client configured: pass bedrock= to farmops_client.connect()")
    knowledge.embedder_of(t)  # refuse before reserving, not after
    model = model or t.model or DEFAULT_MODEL
    bound = sizing.run_bound(
        max_input_tokens=sizing.input_bound(prompt) if max_input_tokens is None else max_input_tokens,
        max_tokens=max_tokens,
        max_tool_turns=max_tool_turns,
    )
    result = _reserve(t, prompt, bound, feature=feature, model=model, request_id=request_id, ttl=ttl)
    usage = Usage()
    inference: dict[str, Any] = {"maxTokens": max_tokens}
    if temperature is not None:
        inference["temperature"] = temperature

    def answer() -> Reply:
        result.retrievals = _start(t, result.run_id, prompt, k)
        return converse(
            t.bedrock,
            model=model,
            system=[system, tools.context_block(result.retrievals)],
            prompt=prompt,
            tools=tools.tool_specs(t),
            inference=inference,
            max_tool_turns=max_tool_turns,
            usage=usage,
            on_tool_use=lambda name, payload: _tool_use(t, result, name, payload, k),
        )

    return _settled(t, result, usage, answer, max_tool_turns)


def _reserve(
    t: Session,
    prompt: str,
    bound: sizing.RunBound,
    *,
    feature: str,
    model: str,
    request_id: str | None,
    ttl: str,
) -> AskResult:
    """Price the run's upper bound and reserve it, committed before the model is called (one round trip)."""
    args = dict(
        farm_id=t.farm_id,
        user_id=t.user_id,
        feature=feature,
        model=model,
        input_tokens=bound.input_tokens,
        output_tokens=bound.output_tokens,
        request_id=request_id or str(uuid.uuid4()),
        ttl=ttl,
        input_summary=_summary(prompt),
    )
    if t.token is None and not t.db_role:
        run = credits.reserve_run(t.conn, **args)  # autocommit: the call is the transaction
    else:
        with t.short_transaction() as conn:  # the verified context or the role, then the same call
            cur = credits.reserve_run_cursor(conn, **args)
        run = cur.fetchone()
    result = AskResult(run_id=run["id"], status="running", text="", stop_reason=None)
    result.credits_reserved = run["credits_reserved"]
    return result


def _start(t: Session, run_id: UUID, prompt: str, k: int) -> list[dict[str, Any]]:
    """Embed the prompt (outside any transaction), then start the run and retrieve for it."""
    embedder = knowledge.embedder_of(t)
    (vector,), tokens = knowledge.embed_metered(embedder, [prompt])
    with t.short_transaction() as conn:
        credits.start_run(conn, run_id)
        knowledge.meter(conn, embedder, tokens, "prompt", run_id)  # the prompt's embedding, on the run
        cur = knowledge.search_for_run(conn, run_id, vector, embedder.model, k=k)
    return cur.fetchall()


def _tool_use(t: Session, result: AskResult, name: str, payload: dict[str, Any], k: int) -> ToolCall:
    call = tools.run_tool(t, result.run_id, name, payload, k)
    result.record(call)
    return call


def _settled(t: Session, result: AskResult, usage: Usage, answer, max_tool_turns: int) -> AskResult:
    """Run ``answer`` and settle the run whatever happens, cancellation included."""
    started = time.monotonic()
    status, error = "failed", "interrupted before the model answered"
    failure: BaseException | None = None
    interrupted: BaseException | None = None
    settled: dict[str, Any] | None = None
    try:
        reply = answer()
        result.text, result.stop_reason = reply.text, reply.stop_reason
        status, error = _verdict(reply, max_tool_turns)
    except (ClientError, BotoCoreError) as exc:
        status, error, failure = "failed", _error_text(exc), exc
    except BaseException as exc:  # cancellation included: settle, then re-raise
        status, error, interrupted = "failed", _error_text(exc), exc
        raise
    finally:
        result.latency_ms = int((time.monotonic() - started) * 1000)
        result.input_tokens, result.output_tokens = usage.input_tokens, usage.output_tokens
        result.status, result.error = status, error
        try:
            with t.short_transaction() as conn:
                cur = credits.settle_run(
                    conn,
                    result.run_id,
                    status=status,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    latency_ms=result.latency_ms,
                    output_summary=_summary(result.text or None),
                    error=_summary(error),
                )
            settled = cur.fetchone()
            result.credits_actual = settled.get("credits_actual")
            result.credits_shortfall = settled.get("credits_shortfall") or 0
        except Exception as settle_exc:
            if interrupted is None:
                raise
            # Keep the original exception; the reservation expires and is refunded by expiry.
            interrupted.add_note(f"farmops: settling run {result.run_id} failed too: {settle_exc}")
    if failure is not None:
        code = failure.response.get("Error", {}).get("Code") if isinstance(failure, ClientError) else None
        raise ModelCallFailed(
            f"model call failed, run {result.run_id} settled as failed: {error}",
            run_id=result.run_id,
            code=code,
            settled=settled,
            cause=failure,
        ) from failure
    return result
