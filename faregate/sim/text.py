"""Deterministic reply text, JSON values and token-exact slicing for the simulator.

Every output is a pure function of its inputs: a reply opens by echoing the
start of the prompt and continues with filler words drawn from a BLAKE2b
stream seeded by a caller-chosen salt. Token counts follow `faregate.tokens`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from faregate.tokens import count_text, split_pieces

_WORDS = (
    "amber", "anchor", "autumn", "beacon", "bright", "brook", "canyon", "cedar",
    "clear", "cloud", "coast", "copper", "crisp", "dawn", "delta", "drift",
    "ember", "field", "fjord", "forest", "gentle", "glade", "granite", "harbor",
    "hollow", "island", "lantern", "meadow", "mellow", "misty", "north", "ocean",
    "orchard", "pebble", "pine", "prairie", "quiet", "rapid", "ridge", "river",
    "sable", "signal", "silver", "slope", "steady", "stone", "summit", "timber",
    "tundra", "valley", "velvet", "vivid", "willow", "winter", "zephyr", "basalt",
    "cobalt", "dune", "falcon", "garnet", "heron", "juniper", "kestrel", "lagoon",
)  # fmt: skip

ECHO_TOKENS = 12
"""At most this many prompt tokens are echoed at the start of a reply."""

DEFAULT_MIN_TOKENS = 20
DEFAULT_MAX_TOKENS = 40


def _stream(salt: str) -> Iterator[int]:
    """An endless, deterministic stream of 64-bit integers seeded by `salt`."""
    counter = 0
    seed = salt.encode()
    while True:
        digest = hashlib.blake2b(seed + counter.to_bytes(8, "little"), digest_size=64).digest()
        for offset in range(0, 64, 8):
            yield int.from_bytes(digest[offset : offset + 8], "little")
        counter += 1


def stable_hex(salt: str, length: int = 24) -> str:
    """A deterministic lowercase hex string of `length` characters."""
    return hashlib.blake2b(salt.encode(), digest_size=32).hexdigest()[:length]


def stable_word(salt: str) -> str:
    """A deterministic word from the filler vocabulary."""
    return _WORDS[next(_stream(salt)) % len(_WORDS)]


def default_length(salt: str) -> int:
    """The default reply length in tokens, between 20 and 40 inclusive."""
    span = DEFAULT_MAX_TOKENS - DEFAULT_MIN_TOKENS + 1
    return DEFAULT_MIN_TOKENS + next(_stream("length|" + salt)) % span


def truncate_tokens(text: str, limit: int) -> str:
    """The longest prefix of `text` holding at most `limit` tokens.

    The cut falls right after a piece, so the prefix counts exactly `limit`
    tokens when `text` has at least that many.
    """
    end = 0
    for index, piece in enumerate(split_pieces(text)):
        if index == limit:
            return text[:end]
        end = text.index(piece, end) + len(piece)
    return text


def segments(text: str) -> list[str]:
    """Split `text` into one segment per token; the segments join back to `text`."""
    result: list[str] = []
    start = end = 0
    for piece in split_pieces(text):
        end = text.index(piece, end) + len(piece)
        result.append(text[start:end])
        start = end
    if start < len(text):
        if result:
            result[-1] += text[start:]
        else:
            result.append(text[start:])
    return result


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop sequence; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


def filler(salt: str, tokens: int, opening: str = "") -> str:
    """`opening` followed by filler sentences; exactly `tokens` tokens in all."""
    used = count_text(opening)
    if used >= tokens:
        return truncate_tokens(opening, tokens)
    words = _stream("filler|" + salt)
    out = [opening] if opening else []
    sentence = 0
    sentence_length = 4 + next(words) % 6
    while used < tokens:
        remaining = tokens - used
        if sentence and (remaining == 1 or sentence >= sentence_length):
            out.append(".")
            sentence, sentence_length = 0, 4 + next(words) % 6
        else:
            word = _WORDS[next(words) % len(_WORDS)]
            if not sentence:
                word = word.capitalize()
            out.append(" " + word if out else word)
            sentence += 1
        used += 1
    return "".join(out)


def reply_text(prompt: str, salt: str, tokens: int | None = None) -> str:
    """The reply to `prompt`: an echo of its start, then filler.

    `tokens` fixes the exact token count; by default it is 20-40, from `salt`.
    """
    length = default_length(salt) if tokens is None else tokens
    echo = truncate_tokens(" ".join(prompt.split()), ECHO_TOKENS)
    opening = f'You said: "{echo}".' if echo else "Hello."
    return filler(salt, length, opening)


def json_reply(salt: str, tokens: int | None = None) -> str:
    """A JSON object reply `{"reply": "..."}`; exactly `tokens` tokens when given.

    The object frame costs 8 tokens, so for `tokens` below 9 the text is a
    truncated (invalid) JSON prefix: exactness wins over validity.
    """
    frame = 8
    if tokens is None:
        body = filler(salt, 8 + next(_stream("json|" + salt)) % 12)
    else:
        body = filler(salt, max(tokens - frame, 1))
    text = '{"reply": "' + body + '"}'
    return text if tokens is None else truncate_tokens(text, tokens)


def schema_value(schema: Any, salt: str, root: Any = None, depth: int = 0) -> Any:
    """A deterministic, type-appropriate value for a JSON schema.

    Objects get their required properties (all properties when none are
    required), arrays one item (or `minItems`), strings a filler word (or a
    format example), numbers their minimum or a small constant; enums and
    consts their first value; unions their first non-null branch; local
    `$ref`s into `$defs`/`definitions` are followed.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 12:
        return None
    if isinstance(schema.get("$ref"), str):
        return schema_value(_resolve_ref(root, schema["$ref"]), salt, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for union in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(union)
        if isinstance(branches, list) and branches:
            choice = next((b for b in branches if _type_of(b) != "null"), branches[0])
            return schema_value(choice, salt, root, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        names = required if isinstance(required, list) else list(properties)
        return {
            str(name): schema_value(properties.get(name, {}), f"{salt}.{name}", root, depth + 1)
            for name in names
        }
    if kind == "array":
        count = schema.get("minItems")
        count = count if isinstance(count, int) and count > 1 else 1
        items = schema.get("items", {})
        return [schema_value(items, f"{salt}[{i}]", root, depth + 1) for i in range(count)]
    if kind == "integer":
        minimum = schema.get("minimum")
        return minimum if isinstance(minimum, int) else 1 + next(_stream(salt)) % 9
    if kind == "number":
        minimum = schema.get("minimum")
        return minimum if isinstance(minimum, int | float) else 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_value(schema, salt)


def _type_of(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None and isinstance(schema.get("properties"), dict):
        return "object"
    if kind is None and "items" in schema:
        return "array"
    return kind if isinstance(kind, str) else None


def _string_value(schema: dict[str, Any], salt: str) -> str:
    formats = {
        "date": "2024-01-01",
        "date-time": "2024-01-01T00:00:00Z",
        "time": "00:00:00",
        "email": "sim@example.com",
        "uri": "https://example.com/sim",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in formats:
        return formats[fmt]
    return stable_word(salt).capitalize()


def _resolve_ref(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node
