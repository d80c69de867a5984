"""The assistant: one governed AI run (:func:`ask`), built from small parts.

- :mod:`.sizing`: the upper bound of a run, reserved before Bedrock is called;
- :mod:`.tools`: the tool specs and each toolUse sent to the database, with an :class:`Outcome`;
- :mod:`.converse`: the Converse loop over tool use (no database);
- :mod:`.guarding`: the guards and PII redaction of untrusted text, a Bedrock :class:`Guardrail`;
- :mod:`.run`: reserve, retrieve, converse, settle (:func:`ask`, :class:`AskResult`).
"""

from .guarding import Guardrail
from .run import DEFAULT_MODEL, SYSTEM_PROMPT, AskResult, ask
from .tools import Outcome, ToolCall

__all__ = ["DEFAULT_MODEL", "SYSTEM_PROMPT", "AskResult", "Guardrail", "Outcome", "ToolCall", "ask"]
