"""The assistant's tools: the built-in specs, and what one toolUse became (:class:`ToolCall`).

The tools are one ``create_<record type>`` per registered record type (``farmops.record_type_tools()``)
plus ``remember_fact`` and ``search_knowledge``, and any of the service's own
(:class:`~farmops_client.assistant.core.Tool`). What the model reads back is the database's
outcome (an :class:`Outcome`), never the client's own guess; how each toolUse reaches the database
is :func:`farmops_client.assistant.core.run_tool`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

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
    HANDLED = "handled"  # one of the service's own tools answered

    @property
    def is_error(self) -> bool:
        """Whether the model is told the call failed (Converse toolResult status 'error')."""
        return self in (Outcome.REFUSED, Outcome.REJECTED)


@dataclass
class ToolCall:
    """One toolUse the model made and what the database answered."""

    name: str
    input: dict[str, Any]
    outcome: Outcome
    result: str  # the text the model reads
    draft_id: UUID | None = None
    record_id: UUID | None = None
    passages: int = 0  # search_knowledge: how many passages the search recorded and returned
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
