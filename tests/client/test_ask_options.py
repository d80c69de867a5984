"""AskOptions: the one value ``ask``, ``ask_stream`` and their asyncio twins build from their keyword
arguments, checked once. Bad values are typed errors (InvalidArgument, OF006) before any SQL or
Bedrock call; the drivers' public keyword signatures stay what they were."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest

import farmops_client
from farmops_client import aio
from farmops_client.assistant import AskOptions, Guardrail, Tool, run
from farmops_client.assistant.core import SYSTEM_PROMPT
from farmops_client.assistant.options import make_plan
from farmops_client.errors import InvalidArgument, NotConfigured

HUGE = "x" * 1_000_001
TOOL = Tool("lookup", "Look a thing up.", {"type": "object"}, lambda payload: "ok")

#: Every bad value an option can take, each refused with InvalidArgument.
BAD = [
    ("feature", None),
    ("feature", ""),
    ("feature", "   "),
    ("feature", "f" * 101),
    ("feature", 42),
    ("feature", "nul\x00"),
    ("max_tokens", None),
    ("max_tokens", 0),
    ("max_tokens", -1),
    ("max_tokens", 1_000_001),
    ("max_tokens", 10**30),
    ("max_tokens", 512.0),
    ("max_tokens", "512"),
    ("max_tokens", True),
    ("model", ""),
    ("model", "m" * 201),
    ("model", 3),
    ("max_input_tokens", 0),
    ("max_input_tokens", -5),
    ("max_input_tokens", 2**31),
    ("max_input_tokens", "100"),
    ("max_input_tokens", False),
    ("k", None),
    ("k", -1),
    ("k", 51),
    ("k", "4"),
    ("k", 4.0),
    ("max_tool_turns", None),
    ("max_tool_turns", -1),
    ("max_tool_turns", 101),
    ("request_id", ""),
    ("request_id", "r" * 201),
    ("request_id", 7),
    ("ttl", None),
    ("ttl", ""),
    ("ttl", "t" * 101),
    ("ttl", 15),
    ("system", 42),
    ("system", ""),
    ("system", [""]),
    ("system", ["ok", None]),
    ("system", "s" * 200_001),
    ("system", {"text": "a dict"}),
    ("temperature", "hot"),
    ("temperature", True),
    ("temperature", -0.1),
    ("temperature", math.nan),
    ("temperature", math.inf),
    ("tools", "create_note"),
    ("tools", [42]),
    ("tools", [None]),
    ("tools", {"create_note"}),
    ("inference_config", ["maxTokens", 5]),
    ("inference_config", {"maxTokens": 0}),
    ("inference_config", {"maxTokens": "5"}),
    ("inference_config", {"maxTokens": None}),
    ("additional_model_request_fields", "not a dict"),
    ("additional_model_request_fields", [1]),
    ("history", "not a list"),
    ("history", [{"content": []}]),
    ("history", [{"role": "system", "content": []}]),
    ("history", ["hello"]),
    ("history", (m for m in ())),
    ("guardrail", "gr-1"),
    ("guardrail", {"guardrailIdentifier": "gr-1"}),
    ("segment_chars", None),
    ("segment_chars", 0),
    ("segment_chars", -1),
    ("segment_chars", 10**7),
    ("segment_chars", "40"),
    ("segment_chars", 4.5),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={str(v)[:20]!r}" for n, v in BAD])
def test_a_bad_option_is_an_invalid_argument_naming_it(name, value):
    with pytest.raises(InvalidArgument) as caught:
        AskOptions(**{name: value})
    assert caught.value.sqlstate == "OF006"
    shown = {"request_id": "request id", "tools": "tool"}.get(name, name)
    assert shown in str(caught.value)


def test_good_options_are_kept_normalised_and_frozen():
    history = [{"role": "user", "content": [{"text": "hi"}]}]
    tools = ["note", TOOL]
    config = {"topP": 0.9, "maxTokens": 64}
    options = AskOptions(
        feature="chat",
        max_tokens=1,
        model="m",
        max_input_tokens=2**31 - 1,
        k=0,
        max_tool_turns=0,
        request_id="req-1",
        ttl="1 minute",
        system="Be brief.",
        temperature=0,
        tools=tools,
        inference_config=config,
        additional_model_request_fields={"top_k": 5},
        history=history,
        guardrail=Guardrail("gr-1", "1"),
        segment_chars=1,
    )
    assert options.system == ("Be brief.",) and options.tools == ("note", TOOL)
    assert options.history == tuple(history) and options.max_output_tokens == 64
    history.append({"role": "assistant", "content": []})
    tools.clear()
    config["maxTokens"] = 1
    assert len(options.history) == 1 and len(options.tools) == 2 and options.max_output_tokens == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.k = 5  # type: ignore[misc]
    assert AskOptions(system=None, history=None).history == () and AskOptions().system is None
    assert AskOptions(temperature=0.7).temperature == 0.7 and AskOptions(tools=[]).tools == ()


def test_the_four_entry_points_keep_their_keywords_and_each_is_an_option_with_its_default():
    defaults = {f.name: f.default for f in dataclasses.fields(AskOptions)}
    entry_points = {
        "ask": run.ask,
        "ask_stream": run.ask_stream,
        "aio ask": aio.AsyncTenantSession.ask,
        "aio ask_stream": aio.AsyncTenantSession.ask_stream,
    }
    keywords = {}
    for label, function in entry_points.items():
        params = list(inspect.signature(function).parameters.values())
        assert [p.name for p in params[:2]] in (["t", "prompt"], ["self", "prompt"]), label
        named = {p.name: p.default for p in params[2:]}
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:]), label
        assert named == {k: v for k, v in defaults.items() if k in named}, label  # same defaults
        keywords[label] = list(named)
    assert keywords["ask"] == keywords["aio ask"] and keywords["ask_stream"] == keywords["aio ask_stream"]
    assert keywords["ask_stream"] == [*keywords["ask"], "segment_chars"]
    assert set(keywords["ask_stream"]) == set(defaults)  # AskOptions.of misses none of them


def test_of_takes_the_options_among_a_calls_arguments():
    options = AskOptions.of({"self": object(), "prompt": "hi", "k": 2, "model": None})
    assert options == AskOptions(k=2)
    with pytest.raises(InvalidArgument):
        AskOptions.of({"k": -2})


class _Session:
    """What make_plan reads of a session (no database needed)."""

    farm_id = "00000000-0000-0000-0000-000000000001"
    user_id = "alice"
    model = "client-model"
    bedrock = object()
    guardrail = None

    class embedder:  # stands in for an Embedder: only its model is read
        model = "lexical"


def test_the_plan_joins_the_options_with_the_session():
    t = _Session()
    plan = make_plan(t, "hello", AskOptions(temperature=0.5, inference_config={"maxTokens": 9}), stream=True)
    assert plan.model == "client-model" and plan.max_tokens == 9 and plan.stream
    assert plan.inference_config == {"temperature": 0.5} and plan.system == (SYSTEM_PROMPT,)
    assert plan.embedder_model == "lexical" and plan.guardrail is None
    t.guardrail = Guardrail("gr-client", "2")
    assert make_plan(t, "hello", AskOptions()).guardrail["guardrailIdentifier"] == "gr-client"
    own = make_plan(t, "hello", AskOptions(guardrail=Guardrail("gr-own", "1")))
    assert own.guardrail["guardrailIdentifier"] == "gr-own"
    for prompt in ("", "nul\x00", HUGE, None, 42):
        with pytest.raises(InvalidArgument):
            make_plan(t, prompt, AskOptions())
    t.bedrock = None
    with pytest.raises(NotConfigured):
        make_plan(t, "hello", AskOptions())


def test_ask_options_is_exported_from_the_package():
    assert farmops_client.AskOptions is AskOptions and "AskOptions" in farmops_client.__all__
