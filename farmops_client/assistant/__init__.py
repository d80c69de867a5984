"""The assistant: one governed AI run (:func:`ask`, :func:`ask_stream`), built from small parts.

- :mod:`.sizing`: the upper bound of one model call, reserved or added to the hold before it;
- :mod:`.tools`: the built-in tool specs and what one toolUse became (:class:`ToolCall`, :class:`Outcome`);
- :mod:`.core`: the run without I/O, a generator of effects (reserve, retrieve, converse, extend,
  tool calls, settle) shared by the sync and the asyncio client;
- :mod:`.guarding`: the guards' refusal, a Bedrock :class:`Guardrail` and its trace's categories;
- :mod:`.streaming`: what an ``ask_stream`` consumer sees, the answer released in screened segments;
- :mod:`.options`: :class:`AskOptions`, the options of one run, checked once, and the run's plan;
- :mod:`.run`: the sync driver (:func:`ask`, :func:`ask_stream`); :mod:`farmops_client.aio` the async one.
"""

from .core import DEFAULT_MODEL, SYSTEM_PROMPT, AskResult, Finished, TextDelta, Tool, ToolOutcome
from .guarding import Guardrail
from .options import AskOptions
from .run import ask, ask_stream
from .tools import Outcome, ToolCall

__all__ = [
    "DEFAULT_MODEL",
    "SYSTEM_PROMPT",
    "AskOptions",
    "AskResult",
    "Finished",
    "Guardrail",
    "Outcome",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolOutcome",
    "ask",
    "ask_stream",
]
