"""The Converse loop: ask the model, answer its toolUse blocks, until it stops or the turns run out.

No database here: each toolUse goes to ``on_tool_use``, whose :class:`ToolCall` becomes the
toolResult the model reads. Token usage is added to ``usage`` as each response arrives, so the
caller can settle with what the provider reported even when a later call fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .tools import ToolCall


@dataclass
class Usage:
    """Tokens Bedrock reported so far, over every call of one run."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def add(self, response: dict[str, Any]) -> None:
        """Count one Converse response."""
        reported = response.get("usage", {})
        self.calls += 1
        self.input_tokens += int(reported.get("inputTokens", 0))
        self.output_tokens += int(reported.get("outputTokens", 0))


@dataclass(frozen=True)
class Reply:
    """The model's final words and why it stopped (``tool_use`` when the turn limit cut it off)."""

    text: str
    stop_reason: str | None
    #: The last response's ``trace`` (a guardrail's assessment when one is configured with trace).
    trace: dict[str, Any] | None = None


def converse(
    bedrock: Any,
    *,
    model: str,
    system: list[str],
    prompt: str,
    tools: list[dict[str, Any]],
    inference: dict[str, Any],
    max_tool_turns: int,
    usage: Usage,
    on_tool_use: Callable[[str, dict[str, Any]], ToolCall],
    guardrail: dict[str, Any] | None = None,
) -> Reply:
    """Converse with tools: at most ``max_tool_turns`` rounds of toolUse, so ``max_tool_turns + 1`` calls.

    With ``guardrail`` (Converse's ``guardrailConfig``), the untrusted parts, i.e. the prompt and
    every system block after the first (the retrieved context), go as ``guardContent``: the
    guardrail evaluates those and never the system prompt itself.
    """
    guarded = guardrail is not None
    user = {"guardContent": {"text": {"text": prompt}}} if guarded else {"text": prompt}
    messages: list[dict[str, Any]] = [{"role": "user", "content": [user]}]
    system_blocks = [
        {"guardContent": {"text": {"text": text}}} if guarded and i > 0 else {"text": text}
        for i, text in enumerate(system)
    ]
    extra = {"guardrailConfig": guardrail} if guarded else {}
    texts: list[str] = []
    stop_reason = None
    response: dict[str, Any] = {}
    for turn in range(max_tool_turns + 1):
        response = bedrock.converse(
            modelId=model,
            system=system_blocks,
            messages=messages,
            toolConfig={"tools": tools},
            inferenceConfig=inference,
            **extra,
        )
        usage.add(response)
        message = response["output"]["message"]
        stop_reason = response.get("stopReason")
        texts.extend(block["text"] for block in message.get("content", []) if "text" in block)
        if stop_reason != "tool_use" or turn == max_tool_turns:
            break
        results = []
        for block in message.get("content", []):
            if "toolUse" in block:
                use = block["toolUse"]
                call = on_tool_use(use["name"], dict(use.get("input") or {}))
                results.append(call.tool_result(use["toolUseId"]))
        messages += [message, {"role": "user", "content": results}]
    return Reply("\n".join(texts).strip(), stop_reason, response.get("trace"))
