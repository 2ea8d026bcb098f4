"""The simulator's Responses and legacy Completions endpoints, driven by the official SDK:
the same text and exact usage as its chat endpoint, and the typed event sequence."""

from __future__ import annotations

import openai
import pytest

from faregate.tokens import count_messages

PROMPT = "Tell me something about the northern lights."


async def test_a_response_matches_the_chat_reply(client: openai.AsyncOpenAI) -> None:
    chat = await client.chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": PROMPT}]
    )
    response = await client.responses.create(model="sim-small", input=PROMPT)
    assert response.output_text == chat.choices[0].message.content
    assert response.usage is not None and chat.usage is not None
    assert response.usage.output_tokens == chat.usage.completion_tokens
    messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    assert response.usage.input_tokens == count_messages(messages, None)


async def test_a_stream_has_the_event_sequence(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(
        model="sim-small", input=PROMPT, max_output_tokens=5
    ) as stream:
        events = [event async for event in stream]
    types = [event.type for event in events]
    final = events[-1].response  # as OpenAI: no `response.completed`, so no final response
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert types.count("response.output_text.delta") == 5
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"


async def test_previous_response_id_is_refused(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model="sim-small", input="x", previous_response_id="r")


async def test_legacy_completions(client: openai.AsyncOpenAI) -> None:
    reply = await client.completions.create(
        model="sim-small", prompt=["One", "Two"], n=2, echo=True, logprobs=1, max_tokens=4
    )
    assert len(reply.choices) == 4
    assert reply.choices[0].text.startswith("One")
    assert reply.choices[2].text.startswith("Two")
    assert reply.choices[0].logprobs is not None
    assert reply.usage is not None and reply.usage.completion_tokens <= 16
    stream = await client.completions.create(
        model="sim-small",
        prompt="One",
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert "".join(c.choices[0].text for c in chunks if c.choices)
