"""The governed run's guards: what the database decides about untrusted text, wired into ``ask()``.

Only untrusted text is screened, never the system prompt:

- the user's message, before anything is reserved (``farmops.screen_input``): blocked -> recorded
  in ``guard_events`` (no run, nothing charged) and never sent; otherwise the model gets the
  message with the PII the farm does not keep redacted;
- retrieved chunks, inside ``farmops.search_for_run``: a flagged or blocked chunk is recorded as
  withheld in the run's lineage and never returned, so this module has nothing to do for them;
- the model's answer (``farmops.screen_output``): blocked -> replaced by a refusal and recorded;
  the answer stored and returned is redacted.

With a Bedrock Guardrail configured (:class:`Guardrail`), Converse gets ``guardrailConfig`` and
only the untrusted parts (the user's message, the retrieved context) are wrapped in
``guardContent``; an intervention is recorded with the categories of its trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: What ``ask()`` answers when the user's message was refused by the input guards.
INPUT_REFUSAL = "The message was not sent to the assistant: it did not pass this farm's input guards."


@dataclass(frozen=True)
class Guardrail:
    """A Bedrock Guardrail to apply to a run: its identifier (id or ARN) and version."""

    identifier: str
    version: str
    trace: bool = True

    def config(self) -> dict[str, Any]:
        """Converse's ``guardrailConfig``."""
        return {
            "guardrailIdentifier": self.identifier,
            "guardrailVersion": self.version,
            "trace": "enabled" if self.trace else "disabled",
        }


def guard_content(text: str) -> dict[str, Any]:
    """A Converse content block the guardrail evaluates (a message or system block)."""
    return {"guardContent": {"text": {"text": text}}}


def guardrail_categories(trace: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The stage (input or output) and the categories a Converse guardrail trace names.

    Categories are ``content:PROMPT_ATTACK``, ``topic:<name>``, ``word:<type>``, ``pii:<type>``,
    ``regex:<name>``, ``grounding:<type>``: the policy and what in it matched, never the text.
    """
    guardrail = (trace or {}).get("guardrail") or {}
    inputs = list((guardrail.get("inputAssessment") or {}).values())
    outputs = [a for group in (guardrail.get("outputAssessments") or {}).values() for a in group]
    found_in = _categories(inputs)
    if found_in:
        return "input", found_in
    return ("output" if outputs else "input"), _categories(outputs)


def _categories(assessments: list[dict[str, Any]]) -> list[str]:
    found: set[str] = set()
    for a in assessments:
        for f in (a.get("contentPolicy") or {}).get("filters", []):
            found.add(f"content:{f.get('type')}")
        for topic in (a.get("topicPolicy") or {}).get("topics", []):
            found.add(f"topic:{topic.get('name')}")
        words = a.get("wordPolicy") or {}
        found.update("word:CUSTOM" for _ in words.get("customWords", []))
        found.update(f"word:{w.get('type')}" for w in words.get("managedWordLists", []))
        sensitive = a.get("sensitiveInformationPolicy") or {}
        found.update(f"pii:{p.get('type')}" for p in sensitive.get("piiEntities", []))
        found.update(f"regex:{r.get('name')}" for r in sensitive.get("regexes", []))
        for f in (a.get("contextualGroundingPolicy") or {}).get("filters", []):
            found.add(f"grounding:{f.get('type')}")
    return sorted(c[:100] for c in found)


def input_screening(screened: dict[str, Any]) -> dict[str, Any]:
    """The ``screening`` of a result from ``farmops.screen_input``'s row (no text)."""
    return {"input": {k: screened[k] for k in ("verdict", "categories", "rule_names", "event_id")}}
