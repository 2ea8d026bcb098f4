"""Route kinds: what a request asks a model to do, and the plan class that limits it."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """The kind of a model and of the routes that call it."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    IMAGES = "images"
    AUDIO_SPEECH = "audio_speech"
    AUDIO_TRANSCRIPTION = "audio_transcription"
    VIDEO = "video"
    RESPONSES = "responses"


ALIASES: dict[str, Kind] = {
    "embedding": Kind.EMBEDDINGS,  # the config spelling before kinds had one enum
    "image": Kind.IMAGES,
    "speech": Kind.AUDIO_SPEECH,
    "tts": Kind.AUDIO_SPEECH,
    "transcription": Kind.AUDIO_TRANSCRIPTION,
    "stt": Kind.AUDIO_TRANSCRIPTION,
}


def parse_kind(value: str) -> Kind:
    """A kind from its name or an accepted alias; ValueError naming the choices otherwise."""
    alias = ALIASES.get(value)
    if alias is not None:
        return alias
    try:
        return Kind(value)
    except ValueError:
        choices = ", ".join([k.value for k in Kind] + sorted(ALIASES))
        raise ValueError(f"unknown kind {value!r}; use one of {choices}") from None


ROUTE_CLASSES = ("chat", "embeddings", "images", "audio", "video")
"""The classes of plan limits (`[plans.NAME.<class>]`): kinds grouped as clients buy them."""

_CLASS_OF: dict[Kind, str] = {
    Kind.CHAT: "chat",
    Kind.RESPONSES: "chat",
    Kind.EMBEDDINGS: "embeddings",
    Kind.IMAGES: "images",
    Kind.AUDIO_SPEECH: "audio",
    Kind.AUDIO_TRANSCRIPTION: "audio",
    Kind.VIDEO: "video",
}


def route_class(kind: Kind) -> str:
    """The plan class whose limits apply to requests of `kind`."""
    return _CLASS_OF[kind]
