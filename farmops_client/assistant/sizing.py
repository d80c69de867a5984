"""Reservation sizing: the upper bound of ONE model call, reserved or added to the run's hold before it.

A run reserves the bound of its first model call; before each further call the hold is extended
(``farmops.extend_reservation``) to cover the tokens the provider reported so far plus the next
call's bound. Each call's output is bounded by its ``maxTokens``; its input by a real count where
the provider offers one (Bedrock ``CountTokens``, plus 10% and :data:`REQUEST_OVERHEAD_TOKENS` of
margin) or else by :func:`estimate_input_tokens`, a documented conservative estimate. Settling
charges what the provider reported, which is never more
than the hold, and refunds the rest.

The conservative estimate is one token per UTF-8 byte of the request as JSON (system blocks,
messages, tool specs and their keys and quotes) plus :data:`REQUEST_OVERHEAD_TOKENS` and
:data:`MESSAGE_OVERHEAD_TOKENS` per message for the chat template. No tokenizer in use emits more
tokens than bytes for text: byte-level BPE tokens are at least one byte each, and the JSON framing
counted here is larger than the role and tool markers a template adds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Added to every estimate: the template's start, end and tool-section markers.
REQUEST_OVERHEAD_TOKENS = 64
#: Added per message: its role markers.
MESSAGE_OVERHEAD_TOKENS = 8


@dataclass(frozen=True)
class CallBound:
    """The most tokens one model call may use, in and out."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class RunBound:
    """Token bounds for a whole run so far (what the hold must cover)."""

    input_tokens: int
    output_tokens: int

    def covers(self, other: RunBound) -> bool:
        """Whether a hold priced at this bound also pays for ``other`` (prices grow with tokens)."""
        return other.input_tokens <= self.input_tokens and other.output_tokens <= self.output_tokens


def request_bytes(request: dict[str, Any]) -> int:
    """The UTF-8 bytes of a Converse request's system blocks, messages and tool specs as JSON."""
    counted = {key: request.get(key) for key in ("system", "messages", "toolConfig") if request.get(key)}
    # default=repr: a value JSON cannot hold (document or image bytes in a history) counts by its repr,
    # about four characters a byte
    return len(json.dumps(counted, ensure_ascii=False, separators=(",", ":"), default=repr).encode("utf-8"))


def estimate_input_tokens(request: dict[str, Any]) -> int:
    """A conservative bound of a Converse request's input tokens (see the module docstring)."""
    size = request_bytes(request)
    return size + REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * len(request.get("messages") or ())


def output_bound(request: dict[str, Any]) -> int:
    """A call's output bound: its ``inferenceConfig.maxTokens``."""
    return int((request.get("inferenceConfig") or {})["maxTokens"])
