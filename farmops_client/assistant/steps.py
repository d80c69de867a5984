"""What a governed run did, step by step: recorded in the database, traced, logged.

A :class:`RunRecorder` follows one ``ask()``:

- the input step (step 0: the prompt's sha256 and its summary, which the database stores redacted)
  is sent in the transaction that starts the run; it claims the run for that prompt, so the same
  request id asked again with another prompt is :class:`IdempotencyConflict` and, while the run is
  still being driven, :class:`RunInProgress`;
- each model call (turn, model, tokens incl. prompt cache, latency, stop reason, guardrail outcome,
  Bedrock request id, text summaries) and each tool call (name, input, the database's outcome, its
  draft or record, the search it made) is kept in memory and sent with ``settle_run``, in the same
  pipelined transaction: no extra round trip. A run that never settles (a killed worker) keeps only
  its input step; its reservation expires as before.
- guard checks (:meth:`RunRecorder.guard`) are steps too, for the guards the run applies;
- each of them is an OpenTelemetry span (:mod:`farmops_client.tracing`) under the run's span.

A request id whose run has finished is replayed (:func:`replay_args`, :func:`replayed`): the
stored result, no model call, no charge.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from opentelemetry import trace
from psycopg.types.json import Jsonb

from .. import tracing
from .tools import Outcome, ToolCall

logger = logging.getLogger(__name__)

SUMMARY_CHARS = 4000
#: Tool input kept per step (bytes of its JSON); larger inputs are stored truncated, as text.
TOOL_INPUT_BYTES = 16_000


def prompt_sha256(prompt: str) -> str:
    """The hex sha256 of the prompt's UTF-8 bytes: what the input step stores and replay compares."""
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


def _text(value: str | None, limit: int = SUMMARY_CHARS) -> str | None:
    return None if not value else value.replace("\x00", "")[:limit]


def _tool_input(payload: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(payload, default=str).replace("\\u0000", "")
    if len(text.encode()) <= TOOL_INPUT_BYTES:
        return json.loads(text)
    return {"truncated": text[: TOOL_INPUT_BYTES // 4]}


@dataclass
class ModelCall:
    """One Converse call while it runs (its turn, the input it was sent, when, its span)."""

    turn: int
    model: str
    input_summary: str | None = None
    started: float = field(default_factory=time.monotonic)
    span: Any = None


class RunRecorder:
    """The steps and spans of one governed run, without I/O (see the module docstring).

    :func:`farmops_client.assistant.core.governed_run` calls it; it returns the arguments of
    ``farmops.record_run_steps`` that the run adds to the transactions it already opens. Spans are
    started with an explicit parent and ended by hand (never attached to the current context), so
    they are the same under the sync and the asyncio drivers.
    """

    def __init__(self, farm_id: Any, prompt: str, *, model: str, feature: str, max_tokens: int):
        self.farm_id = farm_id
        self.prompt = prompt
        self.model = model
        self.feature = feature
        self.max_tokens = max_tokens
        self.sha256 = prompt_sha256(prompt)
        self.run_id: UUID | None = None
        self.pending: list[dict[str, Any]] = []
        self.next_step = 1
        self.searches = 0  # searches of the run that recorded passages (ai_run_retrievals)
        self.first_search: int | None = None
        self.turn = 0  # the Converse turn of the latest model call
        self._tracer = tracing.tracer()
        self.root = self._tracer.start_span(
            "farmops.ask",
            kind=trace.SpanKind.INTERNAL,
            attributes=tracing.clean(
                {
                    tracing.OPERATION: "invoke_agent",
                    tracing.PROVIDER: tracing.BEDROCK,
                    tracing.SYSTEM: tracing.BEDROCK,
                    tracing.REQUEST_MODEL: model,
                    tracing.REQUEST_MAX_TOKENS: max_tokens,
                    tracing.FARM: farm_id,
                    tracing.FEATURE: feature,
                }
            ),
        )
        self._open: list[Any] = []
        self._model_call: ModelCall | None = None

    # -- spans ----------------------------------------------------------------------------------
    def start(self, name: str, attributes: dict[str, Any] | None = None, *, client: bool = False) -> Any:
        """Start a child span of the run (ended by :meth:`end`, or by :meth:`finish` if left open)."""
        current = self._tracer.start_span(
            name,
            context=trace.set_span_in_context(self.root),
            kind=trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL,
            attributes=tracing.clean({tracing.RUN: self.run_id, **(attributes or {})}),
        )
        self._open.append(current)
        return current

    def end(self, current: Any, attributes: dict[str, Any] | None = None) -> None:
        """End a child span, with more attributes."""
        tracing.annotate(current, attributes or {})
        current.end()
        if current in self._open:
            self._open.remove(current)

    def failed(self, exc: BaseException) -> None:
        """End every open child span with status ERROR (a failing effect was thrown into the run)."""
        for current in reversed(self._open):
            current.record_exception(exc)
            current.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            current.end()
        self._open.clear()

    def reserved(self, run: dict[str, Any]) -> None:
        """The reservation is made (or found, for a request id asked before)."""
        self.run_id = run["id"]
        tracing.annotate(
            self.root, {tracing.RUN: self.run_id, tracing.CREDITS_RESERVED: run["credits_reserved"]}
        )
        logger.debug(
            "run %s reserved %s credits (status %s)", self.run_id, run["credits_reserved"], run["status"]
        )

    # -- steps ----------------------------------------------------------------------------------
    def input_args(self) -> dict[str, Any] | None:
        """``record_run_steps`` of the input step (step 0), sent with ``start_run``: it claims the run."""
        step = {
            "step_no": 0,
            "kind": "input",
            "prompt_sha256": self.sha256,
            "input_summary": _text(self.prompt),
        }
        return {"run_id": self.run_id, "steps": Jsonb([step])}

    def retrieved(self, passages: list[dict[str, Any]]) -> None:
        """The run's first search returned ``passages`` (recorded by ``search_for_run`` when any)."""
        if passages:
            self.searches += 1
            self.first_search = self.searches

    def _add(self, step: dict[str, Any]) -> None:
        step["step_no"] = self.next_step
        self.next_step += 1
        self.pending.append({k: v for k, v in step.items() if v is not None})

    def model_started(self, turn: int, input_summary: str | None = None) -> ModelCall:
        """A Converse call is about to be sent: its ``chat <model>`` span."""
        self.turn = turn
        call = ModelCall(turn=turn, model=self.model, input_summary=input_summary)
        call.span = self.start(
            f"chat {self.model}",
            {
                tracing.OPERATION: "chat",
                tracing.PROVIDER: tracing.BEDROCK,
                tracing.SYSTEM: tracing.BEDROCK,
                tracing.REQUEST_MODEL: self.model,
                tracing.REQUEST_MAX_TOKENS: self.max_tokens,
                tracing.FARM: self.farm_id,
                tracing.TURN: turn,
            },
            client=True,
        )
        return call

    def model_done(self, call: ModelCall, response: dict[str, Any]) -> None:
        """The call answered: a model step, and its span ended."""
        usage = response.get("usage", {})
        stop = response.get("stopReason")
        request_id = response.get("ResponseMetadata", {}).get("RequestId")
        content = response.get("output", {}).get("message", {}).get("content", [])
        said = [block["text"] for block in content if "text" in block]
        said += [f"[toolUse {block['toolUse'].get('name')}]" for block in content if "toolUse" in block]
        guardrail = "intervened" if stop == "guardrail_intervened" else None
        if guardrail is None and response.get("trace", {}).get("guardrail"):
            guardrail = "assessed"
        latency = int((time.monotonic() - call.started) * 1000)
        self._add(
            {
                "kind": "model",
                "turn": call.turn,
                "model": call.model,
                "input_tokens": int(usage.get("inputTokens", 0)),
                "output_tokens": int(usage.get("outputTokens", 0)),
                "cache_read_tokens": int(usage.get("cacheReadInputTokens", 0) or 0),
                "cache_write_tokens": int(usage.get("cacheWriteInputTokens", 0) or 0),
                "latency_ms": latency,
                "stop_reason": _text(stop, 100),
                "guardrail": guardrail,
                "provider_request_id": _text(request_id, 200),
                "search": self.first_search if call.turn == 0 else None,
                # Turn 0's input is the prompt, already the input step's: not stored twice.
                "input_summary": _text(call.input_summary) if call.turn else None,
                "output_summary": _text("\n".join(said)),
            }
        )
        self.end(
            call.span,
            {
                tracing.RESPONSE_FINISH_REASONS: [stop] if stop else None,
                tracing.USAGE_INPUT_TOKENS: usage.get("inputTokens"),
                tracing.USAGE_OUTPUT_TOKENS: usage.get("outputTokens"),
                tracing.AWS_REQUEST_ID: request_id,
            },
        )
        logger.debug(
            "run %s turn %s: %s (%s ms, request %s)", self.run_id, call.turn, stop, latency, request_id
        )

    def start_tool(self, name: str) -> Any:
        """A toolUse is about to go to the database: its ``execute_tool`` span."""
        return self.start(
            f"execute_tool {name}",
            {tracing.OPERATION: "execute_tool", tracing.TOOL_NAME: name, tracing.TURN: self.turn},
        )

    def tool_done(self, current: Any, call: ToolCall) -> None:
        """The database answered the toolUse: a tool step, and its span ended."""
        search = None
        if call.outcome is Outcome.SEARCHED and call.passages:
            self.searches += 1
            search = self.searches
        refused = call.outcome in (Outcome.REFUSED, Outcome.REJECTED)
        self._add(
            {
                "kind": "tool",
                "turn": self.turn,
                "tool_name": _text(call.name, 200),
                "tool_input": _tool_input(call.input),
                "outcome": call.outcome.value,
                "reason": _text(call.result, 1000) if refused else None,
                "draft_id": str(call.draft_id) if call.draft_id else None,
                "record_id": str(call.record_id) if call.record_id else None,
                "search": search,
            }
        )
        self.end(current, {tracing.OUTCOME: call.outcome.value})
        logger.debug("run %s tool %s: %s", self.run_id, call.name, call.outcome.value)

    def guard(
        self,
        stage: str,
        verdict: str,
        *,
        categories: list[str] | None = None,
        rules: list[str] | None = None,
        withheld: list[UUID | str] | None = None,
    ) -> None:
        """A guard check the run made (``farmops.check_text`` or the PII guard) as a step.

        ``withheld``: the chunk ids of retrieved passages the guard kept from the model (shown as
        withheld in the lineage).
        """
        detail: dict[str, Any] = {
            "stage": stage,
            "categories": list(categories or []),
            "rules": list(rules or []),
        }
        if withheld:
            detail["withheld"] = [str(w) for w in withheld]
        self._add({"kind": "guard", "guardrail": verdict, "detail": detail})

    def pending_args(self) -> dict[str, Any] | None:
        """``record_run_steps`` of the steps not sent yet (sent after ``settle_run``, in its transaction)."""
        if not self.pending or self.run_id is None:
            return None
        steps, self.pending = self.pending, []
        return {"run_id": self.run_id, "steps": Jsonb(steps)}

    def finish(self, result: Any, exc: BaseException | None = None) -> None:
        """Annotate and end the run's span (and any child left open), and log how the run ended."""
        if exc is not None:
            self.failed(exc)
            self.root.record_exception(exc)
            self.root.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
        else:
            self.failed(RuntimeError("left open"))
        tracing.annotate(
            self.root,
            {
                tracing.STATUS: result.status,
                tracing.OUTCOME: result.status,
                tracing.USAGE_INPUT_TOKENS: result.input_tokens,
                tracing.USAGE_OUTPUT_TOKENS: result.output_tokens,
                tracing.CREDITS_RESERVED: result.credits_reserved,
                tracing.CREDITS_ACTUAL: result.credits_actual,
                tracing.CREDITS_CHARGED: result.credits_charged,
                "farmops.drafts": len(result.drafts),
                "farmops.records": len(result.records),
                "farmops.replayed": result.replayed,
            },
        )
        self.root.end()
        logger.info(
            "run %s %s%s: %s+%s tokens, %s credits charged of %s reserved",
            self.run_id,
            result.status,
            " (replayed)" if result.replayed else "",
            result.input_tokens,
            result.output_tokens,
            result.credits_charged,
            result.credits_reserved,
        )


def replay_args(run_id: UUID, prompt: str, summary: str | None) -> dict[str, Any]:
    """``farmops.replay_run``'s arguments: the stored result of a finished run (OF106, OF501)."""
    return {"run_id": run_id, "prompt_sha256": prompt_sha256(prompt), "input_summary": summary}


def replayed(result: Any, stored: dict[str, Any]) -> Any:
    """Fill an :class:`AskResult` with a replayed run's stored result."""
    result.replayed = True
    result.status, result.text, result.stop_reason = stored["status"], stored["text"], stored["stop_reason"]
    result.error = stored["error"]
    result.input_tokens, result.output_tokens = stored["input_tokens"], stored["output_tokens"]
    result.latency_ms = stored["latency_ms"]
    result.credits_actual, result.credits_shortfall = stored["credits_actual"], stored["credits_shortfall"]
    for call in stored["tool_calls"]:
        result.record(replayed_tool_call(call))
    logger.info("run %s replayed for its request id (%s)", result.run_id, result.status)
    return result


def replayed_tool_call(stored: dict[str, Any]) -> ToolCall:
    """A tool call of a replayed run, as the run recorded it."""
    outcome = Outcome(stored["outcome"])
    return ToolCall(
        stored["name"],
        stored.get("input") or {},
        outcome,
        stored.get("reason") or outcome.value,
        draft_id=UUID(stored["draft_id"]) if stored.get("draft_id") else None,
        record_id=UUID(stored["record_id"]) if stored.get("record_id") else None,
    )
