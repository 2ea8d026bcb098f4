"""OpenAI's audio API in the simulator: `POST /v1/audio/transcriptions`, `/translations`
(multipart forms) and `/v1/audio/speech` (JSON).

Transcripts are `audio_common.transcript_of` the uploaded file (translations the same words);
`stream=true` streams them as `transcript.text.delta` events, a word each, and a `done` event
with token usage (refused for `whisper*` models, as OpenAI refuses);
`json` reports `usage: {"type": "duration", "seconds": S}` with S the file's length rounded up
to whole seconds, `verbose_json` the exact `duration`. Speech is a tone of
`audio_common.speech_seconds(input)` in the asked format, streamed piece by piece (each
chunk a content chunk for stall_after / cut_after). The fault script of a form comes in the
`x-sim-fault` header; of speech, also in `user`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from faregate.providers.audio import (
    OPENAI_VOICES,
    SPEECH_FORMATS,
    SPEECH_TYPES,
    TranscribeCall,
    render_transcript,
)
from faregate.sim.audio_common import duration_of, speech_seconds, tone, transcript_of
from faregate.sim.delivery import play_stream
from faregate.sim.faults import (
    FAULT_HEADER,
    FaultScript,
    FaultScriptError,
    parse_script,
    pause,
    resolve_script,
    select_script,
    wait_for_disconnect,
)
from faregate.sim.openai_common import (
    check_auth,
    fault_error_response,
    invalid_param,
    openai_dialect,
    request_headers,
)
from faregate.sim.prologue import CLIENT_CLOSED, prologue
from faregate.sim.state import STATE
from faregate.tokens import count_text

SPEECH_DIALECT = openai_dialect("We could not parse the JSON body of your request.")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


async def _form(request: web.Request, route: str) -> tuple[dict[str, Any], bytes] | web.Response:
    """The prologue of a form route: count, auth, the header's fault script, the form."""
    state = request.app[STATE]
    state.count_request(route)
    if (refused := check_auth(request)) is not None:
        return refused
    try:
        form = await request.post()
    except ValueError:
        return invalid_param("The request is not a multipart form.", None)
    fields: dict[str, Any] = {}
    audio = b""
    for name, value in form.items():
        if hasattr(value, "file"):
            audio = value.file.read()
        else:
            fields.setdefault(name, []).append(str(value))
    model = (fields.get("model") or [None])[0]
    if isinstance(model, str):
        state.count_model(model)
    try:
        script = parse_script(select_script(request.headers.get(FAULT_HEADER), None))
    except FaultScriptError as exc:
        return invalid_param(str(exc), None, "invalid_sim_fault")
    script = resolve_script(script, state)
    await pause(script.latency_ms if script.latency_ms is not None else state.latency_ms)
    if script.hang:
        await wait_for_disconnect(request)
        return web.Response(status=CLIENT_CLOSED)
    failure = fault_error_response(script, model or "unknown")
    if failure is not None:
        return failure
    fields["_no_usage"] = script.no_usage
    fields["_script"] = script
    return fields, audio


def _first(fields: dict[str, Any], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


async def _transcribe(request: web.Request, task: str) -> web.StreamResponse:
    got = await _form(request, f"audio/{task}")
    if isinstance(got, web.Response):
        return got
    fields, audio = got
    model = _first(fields, "model")
    if not model:
        return invalid_param("you must provide a model parameter", "model")
    if not audio:
        return invalid_param("you must provide a file parameter", "file")
    seconds = duration_of(audio)
    if seconds is None:
        return invalid_param(
            "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg',"
            " 'mpga', 'oga', 'ogg', 'wav', 'webm']",
            "file",
        )
    fmt = _first(fields, "response_format") or "json"
    if fmt not in TRANSCRIPT_FORMATS:
        return invalid_param(f"Invalid response_format: {fmt}", "response_format")
    text = transcript_of(audio, seconds)
    if (_first(fields, "stream") or "false") == "true":
        if model.startswith("whisper"):
            return invalid_param(f"Streaming is not supported for the model {model}.", "stream")
        return await _stream(request, text, seconds, fields["_script"])
    call = TranscribeCall(
        model=model,
        request_id="",
        audio=b"",
        filename="",
        media_type="",
        container="",
        duration_ms=round(seconds * 1000),
        task="translate" if task == "translations" else "transcribe",
        response_format=fmt,
        language=_first(fields, "language"),
        granularities=tuple(fields.get("timestamp_granularities[]") or ()),
    )
    body, content_type = render_transcript(text, call.duration_ms, call)
    if fmt == "json" and not fields["_no_usage"]:
        data = orjson.loads(body)
        data["usage"] = {"type": "duration", "seconds": math.ceil(seconds)}
        body = orjson.dumps(data)
    return web.Response(body=body, headers={**request_headers(), "Content-Type": content_type})


async def _stream(
    request: web.Request, text: str, seconds: float, script: FaultScript
) -> web.StreamResponse:
    """A streamed transcript: a delta event per word (each a content chunk), then `done`
    with token usage (input: 10 per second of audio; output: count_text of the text)."""

    def events() -> Iterator[tuple[bytes, bool]]:
        words = text.split(" ")
        for i, word in enumerate(words):
            delta = {"type": "transcript.text.delta", "delta": word if i == 0 else " " + word}
            yield b"data: " + orjson.dumps(delta) + b"\n\n", True
        done: dict[str, Any] = {"type": "transcript.text.done", "text": text}
        if not script.no_usage:
            inp, out = math.ceil(seconds * 10), count_text(text)
            done["usage"] = {
                "type": "tokens",
                "input_tokens": inp,
                "output_tokens": out,
                "total_tokens": inp + out,
            }
        yield b"data: " + orjson.dumps(done) + b"\n\n", False

    headers = {**request_headers(), "Content-Type": "text/event-stream"}
    return await play_stream(request, script, headers, events())


async def transcriptions(request: web.Request) -> web.StreamResponse:
    return await _transcribe(request, "transcriptions")


async def translations(request: web.Request) -> web.StreamResponse:
    return await _transcribe(request, "translations")


async def speech(request: web.Request) -> web.StreamResponse:
    admitted = await prologue(request, "audio/speech", SPEECH_DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    body = admitted.body
    text, voice = body.get("input"), body.get("voice")
    fmt = body.get("response_format") or "mp3"
    if not isinstance(body.get("model"), str):
        return invalid_param("you must provide a model parameter", "model")
    if not isinstance(text, str) or not text:
        return invalid_param("[{'type': 'string_too_short', 'loc': ('body', 'input')}]", "input")
    if voice not in OPENAI_VOICES:
        return invalid_param(f"Invalid voice: {voice}", "voice")
    if fmt not in SPEECH_FORMATS:
        return invalid_param(f"Invalid response_format: {fmt}", "response_format")
    headers = {**request_headers(), "Content-Type": SPEECH_TYPES[fmt]}
    chunks = ((chunk, True) for chunk in tone(speech_seconds(text), fmt))
    return await play_stream(request, admitted.script, headers, chunks)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/audio/translations", translations)
    app.router.add_post("/v1/audio/speech", speech)
