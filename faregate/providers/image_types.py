"""Image calls inside the gateway: the request, the images an upstream returned, the adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from faregate.billing.types import Usage
from faregate.errors import BadRequest, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image the caller sent (edits, reference images): its bytes and media type."""

    data: bytes
    content_type: str
    filename: str = "image.png"


@dataclass(slots=True)
class ImageCall:
    """One image generation or edit, in the OpenAI Images shape plus the fields other image
    APIs take (seed spellings normalised to snake_case). None: not asked for."""

    model: str
    prompt: str
    n: int
    request_id: str
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str | None = None
    user: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None  # "1K", "2K", "4K"
    negative_prompt: str | None = None
    google_search: bool | None = None
    safety_settings: list[dict[str, Any]] | None = None
    project_id: str | None = None
    veon_model_key: str | None = None
    reference_images: list[InputImage] = field(default_factory=list)
    images: list[InputImage] = field(default_factory=list)  # edits: the images to change
    mask: InputImage | None = None
    edit: bool = False
    per_image: bool = True  # whether the model serving the attempt is priced per image
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the fault script of tests

    @property
    def variant(self) -> str:
        """The price variant of one image: `size/quality` (either may be empty)."""
        size = self.size if self.size not in (None, "auto") else (self.resolution or "")
        quality = self.quality if self.quality not in (None, "auto") else ""
        return f"{size}/{quality}" if quality else str(size)

    def asked(self) -> dict[str, Any]:
        """The optional fields the caller set, by their canonical name."""
        names = [
            "size",
            "quality",
            "style",
            "background",
            "output_format",
            "aspect_ratio",
            "resolution",
            "negative_prompt",
            "google_search",
            "safety_settings",
            "project_id",
            "veon_model_key",
        ]
        out = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        if self.reference_images:
            out["reference_images"] = self.reference_images
        if self.mask is not None:
            out["mask"] = self.mask
        return out


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One image an upstream returned: its bytes (base64) or its own URL."""

    b64: str | None = None
    url: str | None = None
    content_type: str = "image/png"
    revised_prompt: str | None = None


@dataclass(slots=True)
class ImageResult:
    """The images of one reply, the text that came with them, and the reported usage."""

    images: list[GeneratedImage]
    usage: Usage | None = None
    text: str = ""
    created: int | None = None
    input_details: dict[str, int] | None = None  # text and image tokens of the prompt


def cannot_honour(field_name: str, upstream: str) -> BadRequest:
    """The refusal of a field the chosen upstream cannot honour (never dropped silently)."""
    return BadRequest(
        f"'{field_name}' is not supported by this model's {upstream} image upstream.",
        code="unsupported_parameter",
        param=field_name,
    )


class ImagesProtocol(Protocol):
    """An upstream image wire protocol."""

    name: str

    def check_image_call(self, call: ImageCall, upstream_model: str) -> None:
        """Refuse (BadRequest naming it) a field this protocol cannot honour."""
        ...

    def build_image_request(
        self, call: ImageCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest: ...

    def parse_image_response(self, body: bytes, call: ImageCall) -> ImageResult: ...

    def classify_error(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> UpstreamError: ...
