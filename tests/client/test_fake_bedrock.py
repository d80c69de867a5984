"""FakeBedrock: real botocore client, real signing, parsing, retries and error mapping."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from farmops_client.embeddings import TITAN_V2, TitanEmbedder, lexical_vector
from farmops_client.testing import FakeBedrock, fake_bedrock_client

MESSAGES = [{"role": "user", "content": [{"text": "hello"}]}]


def converse(client, **kwargs):
    """One Converse call with a fixed user message."""
    return client.converse(modelId="amazon.nova-lite-v1:0", messages=MESSAGES, **kwargs)


@pytest.mark.parametrize("reason", ["end_turn", "max_tokens", "guardrail_intervened", "content_filtered"])
def test_text_turn_is_parsed_by_botocore(reason):
    fake = FakeBedrock([FakeBedrock.text("hi there", stop_reason=reason, input_tokens=7, output_tokens=3)])
    response = converse(fake_bedrock_client(fake))
    assert response["stopReason"] == reason
    assert response["output"]["message"]["content"] == [{"text": "hi there"}]
    assert response["usage"] == {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}
    assert response["metrics"]["latencyMs"] == 120
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_tool_use_turn_and_request_log():
    fake = FakeBedrock([FakeBedrock.tool_use(("create_sale", {"quantity": 4}), text="recording")])
    tools = [{"toolSpec": {"name": "create_sale", "inputSchema": {"json": {"type": "object"}}}}]
    response = converse(fake_bedrock_client(fake), toolConfig={"tools": tools})
    assert response["stopReason"] == "tool_use"
    blocks = response["output"]["message"]["content"]
    assert blocks[0] == {"text": "recording"}
    assert blocks[1]["toolUse"]["name"] == "create_sale"
    assert blocks[1]["toolUse"]["input"] == {"quantity": 4}
    (seen,) = fake.seen("Converse")
    assert seen.model_id == "amazon.nova-lite-v1:0"
    assert seen.messages == MESSAGES
    assert seen.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "create_sale"
    assert seen.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKE/")


def test_tool_results_sent_back_are_recorded():
    fake = FakeBedrock([FakeBedrock.text("ok")])
    messages = [
        *MESSAGES,
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "x", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "written"}]}}]},
    ]
    fake_bedrock_client(fake).converse(modelId="m", messages=messages)
    assert fake.seen()[0].tool_results() == [{"toolUseId": "t1", "content": [{"text": "written"}]}]


@pytest.mark.parametrize(
    "turn", [FakeBedrock.throttle(429), FakeBedrock.throttle(400), FakeBedrock.unavailable()]
)
def test_throttling_and_unavailable_are_retried_by_standard_mode(turn):
    fake = FakeBedrock([turn, FakeBedrock.text("finally")])
    response = converse(fake_bedrock_client(fake, max_attempts=3))
    assert response["output"]["message"]["content"] == [{"text": "finally"}]
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [r.status for r in fake.seen()] == [turn.status, 200]


def test_retries_give_up_after_max_attempts():
    # botocore quirk: Config(retries={"max_attempts": N}) means N RETRIES (N + 1 requests);
    # "total_max_attempts" would count the first request too.
    fake = FakeBedrock([FakeBedrock.throttle()] * 4)
    with pytest.raises(ClientError) as excinfo:
        converse(fake_bedrock_client(fake, max_attempts=2))
    assert excinfo.value.response["Error"]["Code"] == "ThrottlingException"
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(fake.seen()) == 3
    assert fake.remaining == 1


@pytest.mark.parametrize(
    ("turn", "code", "status"),
    [
        (FakeBedrock.model_timeout(), "ModelTimeoutException", 408),
        (FakeBedrock.validation(), "ValidationException", 400),
        (FakeBedrock.access_denied(), "AccessDeniedException", 403),
    ],
)
def test_non_retryable_errors_map_to_their_codes(turn, code, status):
    fake = FakeBedrock([turn, FakeBedrock.text("never reached")])
    client = fake_bedrock_client(fake, max_attempts=3)
    with pytest.raises(ClientError) as excinfo:
        converse(client)
    assert excinfo.value.response["Error"]["Code"] == code
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert type(excinfo.value).__name__ == code  # botocore's modeled exception class
    assert len(fake.seen()) == 1


def test_default_answer_and_callable_default():
    fake = FakeBedrock(
        default=lambda body: FakeBedrock.text(f"echo {body['messages'][0]['content'][0]['text']}")
    )
    assert converse(fake_bedrock_client(fake))["output"]["message"]["content"] == [{"text": "echo hello"}]


def test_unknown_stop_reason_is_refused():
    with pytest.raises(ValueError):
        FakeBedrock.text("x", stop_reason="bogus")


def test_titan_embeddings_through_invoke_model():
    fake = FakeBedrock()
    embedder = TitanEmbedder(fake_bedrock_client(fake))
    vectors = embedder.embed(["broilers need water", "layers"])
    assert vectors[0] == pytest.approx(lexical_vector("broilers need water"))
    assert len(vectors[1]) == 1024
    assert embedder.input_tokens == 4
    seen = fake.seen("InvokeModel")
    assert [r.model_id for r in seen] == [TITAN_V2, TITAN_V2]
    assert seen[0].body == {"inputText": "broilers need water", "dimensions": 1024, "normalize": True}


def test_embedding_errors_are_injectable_and_retried():
    fake = FakeBedrock(embed_errors=[FakeBedrock.throttle(), FakeBedrock.access_denied()])
    embedder = TitanEmbedder(fake_bedrock_client(fake, max_attempts=3))
    with pytest.raises(ClientError) as excinfo:
        embedder.embed(["x"])
    assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
    assert [r.status for r in fake.seen("InvokeModel")] == [429, 403]
    assert len(embedder.embed(["x"])[0]) == 1024


def test_detach_stops_answering():
    fake = FakeBedrock()
    client = fake_bedrock_client(fake)
    fake.detach(client)
    other = FakeBedrock([FakeBedrock.text("other")]).attach(client)
    assert converse(client)["output"]["message"]["content"] == [{"text": "other"}]
    assert fake.seen() == [] and len(other.seen()) == 1


def test_response_bodies_are_json_as_bedrock_sends_them():
    fake = FakeBedrock()
    status, payload = fake._converse_payload(FakeBedrock.text("a", input_tokens=1, output_tokens=2))
    assert status == 200
    assert json.loads(json.dumps(payload))["usage"]["totalTokens"] == 3


def test_converse_stream_is_a_real_event_stream_botocore_decodes():
    fake = FakeBedrock([FakeBedrock.text("one two three", input_tokens=7, output_tokens=3)])
    response = fake_bedrock_client(fake).converse_stream(
        modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}]
    )
    events = list(response["stream"])
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert deltas == ["one ", "two ", "three"]
    assert events[0] == {"messageStart": {"role": "assistant"}}
    assert {"messageStop": {"stopReason": "end_turn"}} in events
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}
    assert [r.operation for r in fake.seen()] == ["ConverseStream"]


def test_a_streamed_tool_use_carries_its_input_as_json_text():
    fake = FakeBedrock([FakeBedrock.tool_use(("create_note", {"title": "t", "body": "b"}))])
    events = list(
        fake_bedrock_client(fake).converse_stream(modelId="m", messages=[{"role": "user", "content": []}])[
            "stream"
        ]
    )
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"] == {"toolUseId": "tooluse_create_note_0", "name": "create_note"}
    (delta,) = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e
    ]
    assert json.loads(delta) == {"title": "t", "body": "b"}


def test_a_dropped_stream_raises_mid_way():
    from dataclasses import replace

    from urllib3.exceptions import ProtocolError

    fake = FakeBedrock([replace(FakeBedrock.text("a b c d"), drop_after_events=2)])
    stream = fake_bedrock_client(fake).converse_stream(modelId="m", messages=[])["stream"]
    seen = []
    with pytest.raises(ProtocolError):
        for event in stream:
            seen.append(event)
    assert len(seen) == 2


def test_count_tokens_counts_or_refuses_like_a_model_that_cannot():
    request = {
        "modelId": "m",
        "input": {"converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}},
    }
    assert fake_bedrock_client(FakeBedrock()).count_tokens(**request)["inputTokens"] == 18
    with pytest.raises(ClientError) as excinfo:
        fake_bedrock_client(FakeBedrock(count_tokens=False)).count_tokens(**request)
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"
