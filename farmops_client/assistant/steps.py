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

A request id whose run has finished is replayed (:func:`replay`): the stored result, no model call,
no charge.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from .. import db, tracing
from ..session import Session
from .tools import Outcome, ToolCall

logger = logging.getLogger(__name__)

#: The recorder of the run this context is driving (``None`` outside ``ask()``): code that runs
#: inside a governed run (the guards) records its checks with ``current().guard(...)`` without
#: the recorder being passed down.
_CURRENT: contextvars.ContextVar[RunRecorder | None] = contextvars.ContextVar("farmops_run", default=None)


def current() -> RunRecorder | None:
    """The :class:`RunRecorder` of the governed run in progress in this context, if any."""
    return _CURRENT.get()


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
    """One Converse call while it runs; :meth:`RunRecorder.model_call` fills it in."""

    turn: int
    model: str
    input_summary: str | None = None
    response: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)


class RunRecorder:
    """The steps and spans of one governed run (see the module docstring)."""

    def __init__(self, t: Session, prompt: str, *, model: str, feature: str, max_tokens: int):
        self.t = t
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
        self.root: Any = None
        self._stack = contextlib.ExitStack()

    # -- the run's span -----------------------------------------------------------------------
    def __enter__(self) -> RunRecorder:
        token = _CURRENT.set(self)
        self._stack.callback(_CURRENT.reset, token)
        self.root = self._stack.enter_context(
            tracing.span(
                "farmops.ask",
                {
                    tracing.OPERATION: "invoke_agent",
                    tracing.PROVIDER: tracing.BEDROCK,
                    tracing.SYSTEM: tracing.BEDROCK,
                    tracing.REQUEST_MODEL: self.model,
                    tracing.REQUEST_MAX_TOKENS: self.max_tokens,
                    tracing.FARM: self.t.farm_id,
                    tracing.FEATURE: self.feature,
                },
            )
        )
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._stack.__exit__(*exc)

    def span(self, name: str, attributes: dict[str, Any] | None = None):
        """A child span of the run (reserve, embed, retrieve, settle)."""
        return tracing.span(name, {tracing.RUN: self.run_id, **(attributes or {})})

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
    def send_input(self, conn: psycopg.Connection) -> psycopg.Cursor:
        """Queue the input step (step 0) in the transaction that starts the run."""
        step = {
            "step_no": 0,
            "kind": "input",
            "prompt_sha256": self.sha256,
            "input_summary": _text(self.prompt),
        }
        return db.send(conn, "record_run_steps", run_id=self.run_id, steps=Jsonb([step]))

    def retrieved(self, passages: list[dict[str, Any]]) -> None:
        """The run's first search returned ``passages`` (recorded by ``search_for_run`` when any)."""
        if passages:
            self.searches += 1
            self.first_search = self.searches

    def _add(self, step: dict[str, Any]) -> None:
        step["step_no"] = self.next_step
        self.next_step += 1
        self.pending.append({k: v for k, v in step.items() if v is not None})

    @contextlib.contextmanager
    def model_call(self, turn: int, input_summary: str | None = None) -> Iterator[ModelCall]:
        """Around one Converse call: a ``chat <model>`` span, then a model step from the response."""
        self.turn = turn
        call = ModelCall(turn=turn, model=self.model, input_summary=input_summary)
        with tracing.span(
            f"chat {self.model}",
            {
                tracing.OPERATION: "chat",
                tracing.PROVIDER: tracing.BEDROCK,
                tracing.SYSTEM: tracing.BEDROCK,
                tracing.REQUEST_MODEL: self.model,
                tracing.REQUEST_MAX_TOKENS: self.max_tokens,
                tracing.RUN: self.run_id,
                tracing.FARM: self.t.farm_id,
                tracing.TURN: turn,
            },
            kind=tracing.trace.SpanKind.CLIENT,
        ) as current:
            yield call
            if call.response is not None:
                self._model_step(call, current)

    def _model_step(self, call: ModelCall, current: Any) -> None:
        response = call.response or {}
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
        search = self.first_search if call.turn == 0 else None
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
                "search": search,
                # Turn 0's input is the prompt, already the input step's: not stored twice.
                "input_summary": _text(call.input_summary) if call.turn else None,
                "output_summary": _text("\n".join(said)),
            }
        )
        tracing.annotate(
            current,
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

    @contextlib.contextmanager
    def tool_call(self, name: str) -> Iterator[list[ToolCall]]:
        """Around one toolUse sent to the database: an ``execute_tool`` span, then a tool step."""
        turn = self.turn
        done: list[ToolCall] = []
        with tracing.span(
            f"execute_tool {name}",
            {
                tracing.OPERATION: "execute_tool",
                tracing.TOOL_NAME: name,
                tracing.RUN: self.run_id,
                tracing.TURN: turn,
            },
        ) as current:
            yield done
            for call in done:
                self._tool_step(call, turn)
                tracing.annotate(current, {tracing.OUTCOME: call.outcome.value})

    def _tool_step(self, call: ToolCall, turn: int) -> None:
        search = None
        if call.outcome is Outcome.SEARCHED and call.passages:
            self.searches += 1
            search = self.searches
        refused = call.outcome in (Outcome.REFUSED, Outcome.REJECTED)
        self._add(
            {
                "kind": "tool",
                "turn": turn,
                "tool_name": _text(call.name, 200),
                "tool_input": _tool_input(call.input),
                "outcome": call.outcome.value,
                "reason": _text(call.result, 1000) if refused else None,
                "draft_id": str(call.draft_id) if call.draft_id else None,
                "record_id": str(call.record_id) if call.record_id else None,
                "search": search,
            }
        )
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

    def send_pending(self, conn: psycopg.Connection) -> psycopg.Cursor | None:
        """Queue the steps not sent yet (after ``settle_run``, in its transaction)."""
        if not self.pending or self.run_id is None:
            return None
        steps, self.pending = self.pending, []
        return db.send(conn, "record_run_steps", run_id=self.run_id, steps=Jsonb(steps))

    def settled(self, result: Any) -> None:
        """Annotate the run's span with how it ended, and log it."""
        tracing.annotate(
            self.root,
            {
                tracing.STATUS: result.status,
                tracing.OUTCOME: result.status,
                tracing.USAGE_INPUT_TOKENS: result.input_tokens,
                tracing.USAGE_OUTPUT_TOKENS: result.output_tokens,
                tracing.CREDITS_ACTUAL: result.credits_actual,
                tracing.CREDITS_CHARGED: result.credits_charged,
                "farmops.drafts": len(result.drafts),
                "farmops.records": len(result.records),
            },
        )
        logger.info(
            "run %s %s: %s+%s tokens, %s credits charged of %s reserved",
            self.run_id,
            result.status,
            result.input_tokens,
            result.output_tokens,
            result.credits_charged,
            result.credits_reserved,
        )


def replay(t: Session, run_id: UUID, prompt: str, summary: str | None) -> dict[str, Any]:
    """``farmops.replay_run``: a finished run's stored result (OF106 another prompt, OF501 still live)."""
    with t.short_transaction() as conn:
        cur = db.send(
            conn, "replay_run", run_id=run_id, prompt_sha256=prompt_sha256(prompt), input_summary=summary
        )
    stored = cur.fetchone()["replay_run"]
    logger.info("run %s replayed for its request id (%s)", run_id, stored["status"])
    return stored


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
