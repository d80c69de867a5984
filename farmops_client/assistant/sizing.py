"""Reservation sizing: the upper bound of a whole governed run, reserved before Bedrock is called.

A run makes at most ``max_tool_turns + 1`` model calls (the first answer plus one per tool
turn), each of at most ``max_input_tokens`` in and ``max_tokens`` out. Reserving the price of
all of them means a run can never cost more than it reserved: no shortfall, no budget overrun
under concurrency. Settling refunds whatever was not used; lower ``max_tool_turns`` to reserve less.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Room for the system prompt, the context passages and the tool specs in one call's input.
OVERHEAD_TOKENS = 4096


@dataclass(frozen=True)
class RunBound:
    """The most tokens a run may use in total, in and out."""

    input_tokens: int
    output_tokens: int


def input_bound(prompt: str) -> int:
    """An upper bound of one call's input: the prompt (at most one token per byte) plus the overhead."""
    return len(prompt.encode("utf-8")) + OVERHEAD_TOKENS


def run_bound(*, max_input_tokens: int, max_tokens: int, max_tool_turns: int) -> RunBound:
    """Tokens of ``max_tool_turns + 1`` calls of ``max_input_tokens`` in and ``max_tokens`` out."""
    calls = max_tool_turns + 1
    return RunBound(input_tokens=max_input_tokens * calls, output_tokens=max_tokens * calls)
