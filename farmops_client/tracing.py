"""OpenTelemetry spans of the client, through ``opentelemetry-api`` only.

Without an SDK configured by the service, every span is OpenTelemetry's no-op span: nothing is
recorded and nothing is sent. A service that configures one (``TracerProvider`` plus an exporter)
gets one span per governed run (``farmops.ask``) with children ``farmops.reserve``,
``embeddings <model>``, ``farmops.retrieve``, ``chat <model>`` per model call, ``execute_tool <name>``
per tool call and ``farmops.settle``. Attribute names follow the OpenTelemetry GenAI semantic
conventions where they exist (``gen_ai.*``); farmops' own are ``farmops.*``; Bedrock's request ids are
``aws.request_id``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace

#: The instrumentation scope of every farmops span.
TRACER_NAME = "farmops_client"

# Attribute names (GenAI semantic conventions, then farmops' own).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # the older name of the provider attribute, still read by many backends
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
AWS_REQUEST_ID = "aws.request_id"
FARM = "farmops.farm_id"
RUN = "farmops.run_id"
FEATURE = "farmops.feature"
CREDITS_RESERVED = "farmops.credits.reserved"
CREDITS_ACTUAL = "farmops.credits.actual"
CREDITS_CHARGED = "farmops.credits.charged"
COST = "farmops.cost_microdollars"
OUTCOME = "farmops.outcome"
STATUS = "farmops.run.status"
TURN = "farmops.turn"
PASSAGES = "farmops.retrieval.passages"
BEDROCK = "aws.bedrock"


def tracer() -> trace.Tracer:
    """The farmops tracer of the global tracer provider (a no-op one unless an SDK is configured)."""
    return trace.get_tracer(TRACER_NAME)


def clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts: ``None`` dropped, UUIDs and other objects as text."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        if isinstance(value, bool | int | float | str):
            out[key] = value
        elif isinstance(value, list | tuple):
            out[key] = [
                v if isinstance(v, bool | int | float | str) else str(v) for v in value if v is not None
            ]
        else:
            out[key] = str(value)
    return out


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, kind: trace.SpanKind = trace.SpanKind.INTERNAL
) -> Iterator[trace.Span]:
    """A child of the current span; an exception ends it with status ERROR and is recorded, then re-raised."""
    with tracer().start_as_current_span(name, kind=kind, attributes=clean(attributes)) as current:
        yield current


def annotate(current: trace.Span, attributes: Mapping[str, Any]) -> None:
    """Set attributes on a span (``None`` values skipped)."""
    if current.is_recording():
        current.set_attributes(clean(attributes))
