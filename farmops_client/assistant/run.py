"""The governed run's sync driver: :func:`ask` and :func:`ask_stream` execute the effects of
:func:`farmops_client.assistant.core.governed_run` with psycopg and botocore.

Order of operations (the rules are in :mod:`.core`; each database step is its own short committed
transaction of ONE round trip on a connection borrowed for it, and no transaction or connection
is held during a network call):

1. ``farmops.reserve_screened_run`` (membership, the input guards and PII redaction, price and
   reservation in one call): the bound of the FIRST model call (:mod:`.sizing`: the provider's token
   count of the system prompt and tools, never of the user's text, plus a conservative estimate of
   the history and prompt; or the caller's ``max_input_tokens``) is reserved before anything is sent
   to the model. A blocked prompt is recorded and nothing is reserved (status ``blocked``).
   Not enough credits -> :class:`InsufficientCredits`, nothing else happens.
2. the prompt is embedded, then ``farmops.start_run`` + ``farmops.search_for_run`` (pipelined):
   retrieved passages are recorded as the run's retrievals and given to the model as context.
   Without a fixed input bound, the same statement grows the hold for the context block they make
   (``farmops.try_extend_reservation``, by the byte rule of :mod:`.sizing`: ``core.SEARCH_AND_GROW``),
   so the first model call usually needs no ``extend_reservation`` of its own.
3. Bedrock Converse (or ConverseStream, whose text reaches the consumer only in segments screened
   by ``farmops.screen_stream_text``: :mod:`.streaming`), looping over ``tool_use`` up to
   ``max_tool_turns`` times.
   Before each call ``farmops.extend_reservation`` grows the run's hold to cover the tokens reported
   so far plus that call's bound (no round trip when it already does); a refusal ends the loop
   with what was done (``credits_exhausted``) and the run settles. Each toolUse goes to the database
   in its own transaction (or to the service's own handler) and the model reads its outcome; a
   proposal's transaction also grows the hold for the next call (``try_extend_reservation``).
4. ``farmops.finish_run`` whatever happens (a failure, a cancellation, a stream consumer that stops
   reading: then ``farmops.settle_run``, nothing to screen): the answer screened by the output guards
   and the run settled with it in one call, with the tokens the provider reported, or a call's held
   bound when it never reported; the price is computed by the database and never exceeds the hold.
   If settling itself is impossible (process killed, database gone), the reservation expires and
   ``farmops.expire_reservations`` refunds it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import psycopg

from .. import db, knowledge
from ..errors import SessionBusy
from ..session import Session
from . import core, streaming
from .core import (
    DEFAULT_MODEL,
    SYSTEM_PROMPT,
    AskResult,
    Call,
    CountTokens,
    Db,
    Embed,
    Emit,
    Finished,
    ModelCall,
    RunServiceTool,
    Statement,
    TextDelta,
    Tool,
    ToolOutcome,
)
from .guarding import Guardrail
from .options import AskOptions, make_plan

__all__ = [
    "DEFAULT_MODEL",
    "SYSTEM_PROMPT",
    "AskResult",
    "Finished",
    "TextDelta",
    "Tool",
    "ToolOutcome",
    "ask",
    "ask_stream",
]


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
    system: str | Sequence[str] | None = None,
    temperature: float | None = None,
    tools: Sequence[str | Tool] | None = None,
    inference_config: dict[str, Any] | None = None,
    additional_model_request_fields: dict[str, Any] | None = None,
    history: Sequence[dict[str, Any]] | None = None,
    guardrail: Guardrail | None = None,
) -> AskResult:
    """One governed assistant run for the session's user and farm (see the module docstring).

    Options (checked once, into one :class:`AskOptions`, whose docstring bounds each): ``feature``,
    ``max_tokens`` (512), ``model``, ``max_input_tokens`` (a fixed input bound per call instead of a
    count or estimate), ``k`` (passages retrieved, 4), ``max_tool_turns`` (4), ``request_id``,
    ``ttl``, ``system`` (a string or list of strings instead of the farm assistant's prompt),
    ``temperature``, ``tools`` (``None``: every record type plus remember and search; else a list of
    record type names, ``"remember_fact"``, ``"search_knowledge"`` and :class:`Tool` objects of your
    own; ``[]``: none), ``inference_config``, ``additional_model_request_fields``, ``history``
    (Converse messages to continue, e.g. a previous result's ``messages``), ``guardrail`` (a Bedrock
    :class:`Guardrail`; default the client's ``guardrail``). A message the input guards block is
    refused before anything is reserved (status ``blocked``, no run; see :mod:`.guarding`).

    Raises :class:`InsufficientCredits` before any model call when the farm cannot pay the first
    call's bound, and :class:`ModelCallFailed` (after settling the run as failed, which refunds the
    unused hold) when Bedrock refuses or fails a call.
    """
    _not_busy(t)
    plan = make_plan(t, prompt, AskOptions.of(locals()))  # the keyword arguments, checked once
    return drive(core.governed_run(plan, t.cache), _Effects(t))


def ask_stream(
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
    system: str | Sequence[str] | None = None,
    temperature: float | None = None,
    tools: Sequence[str | Tool] | None = None,
    inference_config: dict[str, Any] | None = None,
    additional_model_request_fields: dict[str, Any] | None = None,
    history: Sequence[dict[str, Any]] | None = None,
    guardrail: Guardrail | None = None,
    segment_chars: int = streaming.SEGMENT_CHARS,
) -> Iterator[TextDelta | ToolOutcome | Finished]:
    """:func:`ask` over ConverseStream: yields :class:`TextDelta` pieces of the answer as they pass the
    farm's output guards and PII redaction, :class:`ToolOutcome` as they come, then :class:`Finished`
    with the settled :class:`AskResult`.

    No text reaches the consumer before it was screened (:mod:`.streaming`): the answer so far is
    screened at a sentence or line end every ``segment_chars`` characters (one round trip each) and
    released up to a safe cut, redacted; the held-back tail comes from the final screened answer just
    before :class:`Finished`. The pieces join into a prefix of ``Finished.result.text``; when a screen
    blocks, no more text is yielded and the answer is the refusal (``result.screening``).

    Closing the iterator early (or an error in the consumer) still settles the run, exactly once:
    with the usage the stream reported, or the interrupted call's held bound when it never did.
    """
    _not_busy(t)
    options = AskOptions.of(locals())  # the keyword arguments, checked once
    guard = streaming.StreamGuard(options.segment_chars)
    plan = make_plan(t, prompt, options, stream=True)
    return _stream(core.governed_run(plan, t.cache), _Effects(t), guard)


def _not_busy(t: Session) -> None:
    if t.in_transaction:  # refused before anything is counted, reserved or sent
        raise SessionBusy("commit or roll back the session's transaction before a governed run")


def drive(run: Generator[Any, Any, AskResult], handle: Callable[[Any], Any]) -> AskResult:
    """Execute a governed run's effects in order; each failure is thrown back into the run."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = run.throw(error) if error is not None else run.send(value)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = handle(effect), None
        except BaseException as exc:
            value, error = None, exc


def _stream(
    run: Generator[Any, Any, AskResult], effects: _Effects, guard: streaming.StreamGuard
) -> Iterator[Any]:
    value: Any = None
    error: BaseException | None = None
    closed = False  # the consumer stopped reading: nothing more is yielded to it
    while True:
        try:
            effect = run.throw(error) if error is not None else run.send(value)
        except StopIteration:
            return
        value, error = None, None
        try:
            if isinstance(effect, Emit):
                if not closed:
                    yield from guard.emitted(effect.event)  # Finished: the screened tail first
            elif isinstance(effect, ModelCall) and effect.stream:
                value = yield from effects.stream(effect, guard, lambda: closed)  # noqa: B023 - read while this effect runs
            else:
                value = effects(effect)
        except BaseException as exc:
            closed = closed or isinstance(exc, GeneratorExit)
            error = exc


#: The effects that call the model provider (blocking botocore): :func:`provider_effect`'s.
PROVIDER_EFFECTS = (Embed, CountTokens, ModelCall)


def provider_effect(effect: Embed | CountTokens | ModelCall, bedrock: Any, embedder: Any, cache: dict) -> Any:
    """One effect that calls the provider, blocking: the sync driver runs it in place, the asyncio
    driver (:mod:`farmops_client.aio`) in its worker threads (both with the session's Bedrock client
    and embedder, which ``make_plan`` made sure of). An embedding's ``(vector, tokens)``; a
    token count (``None`` when the model cannot count: remembered in ``cache``); a Converse response
    (a streamed call is each driver's own: its text is released in screened segments)."""
    if isinstance(effect, Embed):
        (vector,), tokens = knowledge.embed_metered(embedder, [effect.text])
        return vector, tokens
    if isinstance(effect, CountTokens):
        args = core.count_tokens_args(effect.request, cache, bedrock)
        if args is None:
            return None
        try:
            response = bedrock.count_tokens(**args)
        except Exception as exc:
            return core.counted(None, exc, effect.request, cache)
        return core.counted(response, None, effect.request, cache)
    return bedrock.converse(**effect.request)


class _Effects:
    """The sync executor of a run's effects, for one session."""

    def __init__(self, t: Session):
        self.t = t

    def __call__(self, effect: Any) -> Any:
        if isinstance(effect, Db):
            return self.db(effect)
        if isinstance(effect, PROVIDER_EFFECTS):
            return provider_effect(effect, self.t.bedrock, self.t.embedder, self.t.cache)
        if isinstance(effect, RunServiceTool):
            return effect.tool.handler(effect.payload)
        if isinstance(effect, Emit):
            return None
        raise TypeError(f"unknown effect {effect!r}")

    def db(self, effect: Db) -> list[list[dict[str, Any]]]:
        t = self.t
        if not effect.context and t.token is None and not t.db_role and len(effect.steps) == 1:
            with t.lent() as conn:
                if conn.autocommit:  # the call is the transaction: one round trip
                    cur = _send(conn, effect.steps[0])
                    with db.translated():
                        rows = [cur.fetchall()]
                    db.vouch_clean(conn)  # only farmops' own call ran: no reset round trip on return
                    return rows
        with t.short_transaction() as conn:
            if not effect.durable:
                _send(conn, core.LAZY_COMMIT)
            cursors = [_send(conn, step) for step in effect.steps]
            db.vouch_clean(conn)  # the pipeline's steps only; a failed one leaves the connection idle too
        with db.translated():
            return [cur.fetchall() for cur in cursors]

    def stream(
        self, effect: ModelCall, guard: streaming.StreamGuard, closed: Callable[[], bool]
    ) -> Generator[TextDelta, None, dict[str, Any]]:
        """One ConverseStream call: its text released in screened segments as it comes (one short
        ``screen_stream_text`` round trip per segment, none held open), the assembled response returned."""
        response = self.t.bedrock.converse_stream(**effect.request)
        events = response["stream"]
        guard.start(effect)
        try:
            for event in core.stream_events(events):
                if (screen := guard.take(event, closed())) is None:
                    continue
                if piece := guard.screened(self.db(Db((screen,)))[0][0]):
                    yield TextDelta(piece)
        finally:
            guard.end()
            events.close()
        return effect.assembler.response()


def _send(conn: psycopg.Connection, step: Call | Statement) -> psycopg.Cursor[dict[str, Any]]:
    if isinstance(step, Call):
        return db.send(conn, step.function, step.casts, **step.kwargs)
    return db.execute(conn, step.query, step.params)
