"""What a governed run was asked to do: one :class:`AskOptions` value, checked once.

``ask`` and ``ask_stream`` (sync, :mod:`.run`) and their asyncio twins (:mod:`farmops_client.aio`)
keep their keyword arguments as they are (a public contract); each builds one :class:`AskOptions`
from them (:meth:`AskOptions.of`) and hands it on, so an option is named, defaulted and checked in
one place. :func:`make_plan` joins the options with the session (its farm, member, model, embedder
and guardrail) into the run's :class:`~.core.Plan`.

A bad option is a :class:`~farmops_client.errors.InvalidArgument` (OF006, as the database would
say), raised before anything is counted, reserved or sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..arguments import int_arg, text_arg
from ..errors import InvalidArgument, NotConfigured
from .core import DEFAULT_MODEL, SYSTEM_PROMPT, Plan, Tool
from .guarding import Guardrail
from .streaming import SEGMENT_CHARS

__all__ = ["AskOptions", "make_plan"]

#: Bounds of the options (characters for texts).
PROMPT_CHARS = 1_000_000
SYSTEM_CHARS = 200_000
FEATURE_CHARS = 100
MODEL_CHARS = 200
REQUEST_ID_CHARS = 200
TTL_CHARS = 100
MAX_TOKENS = 1_000_000
MAX_K = 50
MAX_TOOL_TURNS = 100
MAX_SEGMENT_CHARS = 1_000_000


@dataclass(frozen=True)
class AskOptions:
    """The options of one ``ask`` / ``ask_stream`` call, checked when the value is made.

    - ``feature``: what the run is charged and reported under (text, at most 100 characters);
    - ``max_tokens``: each model call's output bound (1 to 1,000,000; ``inference_config``'s
      ``maxTokens`` wins when given);
    - ``model``: a Bedrock model id (``None``: the client's model);
    - ``max_input_tokens``: a fixed input bound per call instead of a count or estimate (``None``,
      or at least 1);
    - ``k``: passages retrieved for the prompt (0 to 50; 0: no retrieval, no context block);
    - ``max_tool_turns``: model turns that may follow tool use (0 to 100);
    - ``request_id``: the idempotency key (``None``: a fresh one); ``ttl``: how long the hold lives
      (a PostgreSQL interval, checked by the database);
    - ``system``: the system prompt, a text or texts (``None``: the farm assistant's);
    - ``temperature``: a finite number, at least 0 (``None``: the model's default);
    - ``tools``: ``None`` (every record type plus remember and search), or record type names,
      ``"remember_fact"``, ``"search_knowledge"`` and :class:`~.core.Tool` objects;
    - ``inference_config``, ``additional_model_request_fields``: dicts passed to Converse;
    - ``history``: Converse messages to continue (``{"role": "user"|"assistant", ...}``; kept as a
      tuple, ``()`` when ``None``);
    - ``guardrail``: a Bedrock :class:`~.guarding.Guardrail` (``None``: the client's);
    - ``segment_chars``: ``ask_stream`` only, characters between two screens (1 to 1,000,000).

    Sequences are kept as tuples and dicts as copies: the value does not change when the caller's
    lists do.
    """

    feature: str = "assistant"
    max_tokens: int = 512
    model: str | None = None
    max_input_tokens: int | None = None
    k: int = 4
    max_tool_turns: int = 4
    request_id: str | None = None
    ttl: str = "15 minutes"
    system: tuple[str, ...] | None = None
    temperature: float | None = None
    tools: tuple[str | Tool, ...] | None = None
    inference_config: dict[str, Any] | None = None
    additional_model_request_fields: dict[str, Any] | None = None
    history: tuple[dict[str, Any], ...] | None = None  # kept as a tuple, () for none
    guardrail: Guardrail | None = None
    segment_chars: int = SEGMENT_CHARS

    def __post_init__(self) -> None:
        checked = {
            "feature": text_arg(self.feature, "feature", FEATURE_CHARS),
            "max_tokens": int_arg(self.max_tokens, "max_tokens", 1, MAX_TOKENS),
            "model": None if self.model is None else text_arg(self.model, "model", MODEL_CHARS),
            "max_input_tokens": None
            if self.max_input_tokens is None
            else int_arg(self.max_input_tokens, "max_input_tokens", 1),
            "k": int_arg(self.k, "k", 0, MAX_K),
            "max_tool_turns": int_arg(self.max_tool_turns, "max_tool_turns", 0, MAX_TOOL_TURNS),
            "request_id": None
            if self.request_id is None
            else text_arg(self.request_id, "request id", REQUEST_ID_CHARS),
            "ttl": text_arg(self.ttl, "ttl", TTL_CHARS),
            "system": _system(self.system),
            "temperature": _temperature(self.temperature),
            "tools": _tools(self.tools),
            "inference_config": _inference_config(self.inference_config),
            "additional_model_request_fields": _dict_or_none(
                self.additional_model_request_fields, "additional_model_request_fields"
            ),
            "history": _history(self.history),
            "guardrail": _guardrail(self.guardrail),
            "segment_chars": int_arg(self.segment_chars, "segment_chars", 1, MAX_SEGMENT_CHARS),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> AskOptions:
        """The options among a call's arguments (``locals()`` at the top of ``ask``): every field
        named there, the rest left at its default (``ask`` has no ``segment_chars``)."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls) if f.name in arguments})

    @property
    def max_output_tokens(self) -> int:
        """Each model call's output bound: ``inference_config``'s ``maxTokens``, else ``max_tokens``."""
        return (self.inference_config or {}).get("maxTokens", self.max_tokens)


def _dict_or_none(value: Any, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{name} must be a dict, not {type(value).__name__}")
    return dict(value)


def _list(value: Any, name: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidArgument(f"{name} must be a list, not {type(value).__name__}")
    return tuple(value)


def _system(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    return tuple(text_arg(s, "system", SYSTEM_CHARS) for s in _list(value, "system"))


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"temperature must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"temperature must be a finite number of at least 0, not {value}")
    return value


def _tools(value: Any) -> tuple[str | Tool, ...] | None:
    if value is None:
        return None
    tools = _list(value, "tools")
    for tool in tools:
        if not isinstance(tool, (str, Tool)):
            shown = type(tool).__name__
            raise InvalidArgument(f"a tool is a record type name or a farmops Tool, not {shown}")
    return tools


def _inference_config(value: Any) -> dict[str, Any] | None:
    config = _dict_or_none(value, "inference_config")
    if config is not None and "maxTokens" in config:
        config["maxTokens"] = int_arg(config["maxTokens"], "inference_config maxTokens", 1, MAX_TOKENS)
    return config


def _history(value: Any) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    history = _list(value, "history")
    for message in history:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidArgument(
                "history must be Converse messages ({'role': 'user'|'assistant', 'content': [...]})"
            )
    return history


def _guardrail(value: Any) -> Guardrail | None:
    if value is not None and not isinstance(value, Guardrail):
        raise InvalidArgument(f"guardrail must be a farmops Guardrail, not {type(value).__name__}")
    return value


def make_plan(t: Any, prompt: str, options: AskOptions, *, stream: bool = False) -> Plan:
    """The run's :class:`~.core.Plan`: ``options`` for the session ``t`` (sync or asyncio), whose
    Bedrock client and embedder must be configured, and ``prompt`` (text, at most 1,000,000 characters)."""
    if t.bedrock is None:
        raise NotConfigured("no Bedrock client configured: pass bedrock= to farmops_client.connect()")
    if t.embedder is None:  # refuse before reserving, not after
        raise NotConfigured("no embedder configured: pass embedder= to farmops_client.connect()")
    config = dict(options.inference_config or {})
    if options.temperature is not None:
        config["temperature"] = options.temperature
    config.pop("maxTokens", None)  # it is the plan's max_tokens
    guardrail = options.guardrail or getattr(t, "guardrail", None)
    return Plan(
        farm_id=t.farm_id,
        user_id=t.user_id,
        prompt=text_arg(prompt, "prompt", PROMPT_CHARS),
        feature=options.feature,
        model=text_arg(options.model or t.model or DEFAULT_MODEL, "model", MODEL_CHARS),
        max_tokens=options.max_output_tokens,
        max_input_tokens=options.max_input_tokens,
        k=options.k,
        max_tool_turns=options.max_tool_turns,
        request_id=options.request_id,
        ttl=options.ttl,
        system=(SYSTEM_PROMPT,) if options.system is None else options.system,
        inference_config=config,
        additional_model_request_fields=options.additional_model_request_fields,
        tools=options.tools,
        history=options.history or (),
        stream=stream,
        embedder_model=t.embedder.model,
        guardrail=None if guardrail is None else guardrail.config(),
    )
