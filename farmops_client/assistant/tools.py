"""The assistant's tools: their specs, and each toolUse sent to the database in its own transaction.

The tools are one ``create_<record type>`` per registered record type (``farmops.record_type_tools()``)
plus ``remember_fact`` and ``search_knowledge``. What the model reads back is the database's
outcome (an :class:`Outcome`), never the client's own guess.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from .. import db, knowledge, write_path
from ..errors import InvalidPayload, SuggestOnly, UnknownRecordType
from ..session import Session

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


class Outcome(enum.StrEnum):
    """What the database did with one toolUse."""

    DRAFTED = "drafted"  # a draft waits for a human's confirmation
    WRITTEN = "written"  # autonomy allowed it: the record was written
    REFUSED = "refused"  # the farm's autonomy is 'suggest' for this record type
    REJECTED = "rejected"  # not a valid payload, or no such record type
    REMEMBERED = "remembered"  # a memory was stored
    SEARCHED = "searched"  # passages were retrieved for the run

    @property
    def is_error(self) -> bool:
        """Whether the model is told the call failed (Converse toolResult status 'error')."""
        return self in (Outcome.REFUSED, Outcome.REJECTED)


#: propose_write's outcome column -> Outcome.
PROPOSED = {"drafted": Outcome.DRAFTED, "auto_applied": Outcome.WRITTEN}


@dataclass
class ToolCall:
    """One toolUse the model made and what the database answered."""

    name: str
    input: dict[str, Any]
    outcome: Outcome
    result: str  # the text the model reads
    draft_id: UUID | None = None
    record_id: UUID | None = None
    status: str = field(init=False)  # Converse's toolResult status: 'success' | 'error'

    def __post_init__(self) -> None:
        self.status = "error" if self.outcome.is_error else "success"

    def tool_result(self, tool_use_id: str) -> dict[str, Any]:
        """The Converse ``toolResult`` content block answering this call."""
        return {
            "toolResult": {
                "toolUseId": tool_use_id,
                "content": [{"text": self.result}],
                "status": self.status,
            }
        }


#: How long a client reuses the record types' tool specs (``farmops.register_record_type`` adds
#: types rarely; a proposal of an unknown type, or ``client.cache.clear()``, drops them at once).
TOOL_SPECS_TTL = 300.0


def tool_specs(t: Session) -> list[dict[str, Any]]:
    """The Converse tool specs of the registered record types, plus remember and search.

    Cached in ``t.cache`` (one per client) for :data:`TOOL_SPECS_TTL` seconds: record types are
    global, so a governed run does not fetch them every time.
    """
    cached = t.cache.get("tool_specs")
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    with t.short_transaction() as conn:
        cur = db.send(conn, "record_type_tools")
    rows = cur.fetchall()
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
    specs = [*tools, {"toolSpec": REMEMBER_TOOL}, {"toolSpec": SEARCH_TOOL}]
    t.cache["tool_specs"] = (time.monotonic() + TOOL_SPECS_TTL, specs)
    return specs


def context_block(passages: list[dict[str, Any]]) -> str:
    """Retrieved passages as the model reads them."""
    if not passages:
        return "No context passages matched."
    lines = ["Context passages (retrieved for this question):"]
    for i, p in enumerate(passages, 1):
        lines.append(f"[{i}] ({p.get('source')}, score {float(p.get('score') or 0):.2f}) {p.get('content')}")
    return "\n".join(lines)


def retrieve(t: Session, run_id: UUID, query: str, k: int) -> list[dict[str, Any]]:
    """Embed ``query`` (outside any transaction), then ``search_for_run`` in a short one."""
    embedder = knowledge.embedder_of(t)
    (vector,), tokens = knowledge.embed_metered(embedder, [query])
    with t.short_transaction() as conn:
        knowledge.meter(conn, embedder, tokens, "search", run_id)  # the embedding is metered on the run
        cur = knowledge.search_for_run(conn, run_id, vector, embedder.model, k=k)
    return cur.fetchall()


def run_tool(t: Session, run_id: UUID, name: str, payload: dict[str, Any], k: int) -> ToolCall:
    """Send one toolUse to the database; the database's outcome becomes the tool result."""
    if name == SEARCH_TOOL["name"]:
        hits = retrieve(t, run_id, str(payload.get("query", "")), int(payload.get("k") or k))
        return ToolCall(name, payload, Outcome.SEARCHED, context_block(hits))
    if name == REMEMBER_TOOL["name"]:
        return _remember(t, run_id, payload)
    return _propose(t, run_id, name, payload)


def _remember(t: Session, run_id: UUID, payload: dict[str, Any]) -> ToolCall:
    fact = str(payload.get("fact", ""))
    embedder = knowledge.embedder_of(t)
    (vector,), tokens = knowledge.embed_metered(embedder, [fact])  # network call: outside any transaction
    try:
        with t.short_transaction() as conn:
            knowledge.meter(conn, embedder, tokens, "remember", run_id)
            cur = knowledge.store_memory(conn, fact, vector, embedder.model, run_id)
        memory_id = cur.fetchone()["memory_id"]
    except InvalidPayload as exc:
        return ToolCall(REMEMBER_TOOL["name"], payload, Outcome.REJECTED, f"not accepted: {exc}")
    text = f"remembered (memory {memory_id})"
    return ToolCall(REMEMBER_TOOL["name"], payload, Outcome.REMEMBERED, text, record_id=memory_id)


def _propose(t: Session, run_id: UUID, name: str, payload: dict[str, Any]) -> ToolCall:
    record_type = name.removeprefix("create_")
    try:
        with t.short_transaction() as conn:
            cur = write_path.propose_write(conn, run_id, record_type, payload)
        row = cur.fetchone()
    except SuggestOnly:
        return ToolCall(name, payload, Outcome.REFUSED, "not allowed: suggest only")
    except (InvalidPayload, UnknownRecordType) as exc:
        if isinstance(exc, UnknownRecordType):
            t.cache.pop("tool_specs", None)  # the model saw a type that is gone: fetch them again
        return ToolCall(name, payload, Outcome.REJECTED, f"not accepted: {exc}")
    outcome = PROPOSED[row["outcome"]]
    if outcome is Outcome.WRITTEN:
        text = f"written (record {row['record_id']})"
    else:
        text = f"drafted for confirmation (draft {row['draft_id']})"
    return ToolCall(name, payload, outcome, text, draft_id=row["draft_id"], record_id=row["record_id"])
