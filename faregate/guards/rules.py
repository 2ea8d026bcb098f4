"""Rule-based prompt-injection detection: normalise the text, decode what hides in it, score
named patterns against a threshold.

The rules catch the common, literal phrasings ("ignore all previous instructions", "reveal
your system prompt", "you are now DAN", and their translations), also when written with
look-alike letters, zero-width characters, spacing tricks or base64. They do not understand
intent: a paraphrase they do not list passes, and a text that quotes an attack (a question
about prompt injection) is refused. The classifier detector is for what rules cannot see.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    weight: float = 1.0
    anchors: tuple[str, ...] = ()
    """Words of which one must be in the text for the pattern to be tried (a cheap filter:
    a substring test costs far less than a regex search); empty: always tried."""


def rule(name: str, pattern: str, weight: float = 1.0, anchors: tuple[str, ...] = ()) -> Rule:
    """A rule matched on case-folded text: write built-in patterns in lower case. Operator
    patterns (no anchors) are compiled case-insensitive as well."""
    flags = re.IGNORECASE if not anchors else 0
    return Rule(name, re.compile(pattern, flags), weight, anchors)


def alt(*words: str) -> str:
    """A non-capturing alternation of regex fragments."""
    return "(?:" + "|".join(words) + ")"


_PRIOR = r"(?:(?:all|any|the|your|of)\s+)*" + alt(
    "previous", "prior", "above", "earlier", "preceding", "former", "original", "initial", "system"
)
_ORDERS = alt(
    r"instructions?", r"prompts?", "rules", "directions", "directives", "guidelines",
    "commands", "context", "messages",
)  # fmt: skip
_IGNORE = alt("ignore", "disregard", "forget", "skip", "override", "bypass")
_SHOW = alt("reveal", "print", "show", "output", "repeat", "display", "leak", r"tell\s+me")
_SECRET = r"(?:(?:full|entire|exact|hidden|secret|original|initial)\s+)*" + alt(
    r"system\s+prompt", r"system\s+message", r"hidden\s+instructions",
    r"initial\s+instructions", r"instructions\s+above",
)  # fmt: skip
_PERSONA = alt(
    "dan", r"in\s+developer\s+mode", "jailbroken", r"an?\s+unrestricted", r"no\s+longer\s+bound"
)
_UNFILTERED = alt("restrictions", "filters", "guidelines", "limitations", "rules")

DEFAULT_RULES: tuple[Rule, ...] = (
    rule(
        "ignore_previous",
        rf"\b{_IGNORE}\s+{_PRIOR}\s+{_ORDERS}",
        anchors=("ignore", "disregard", "forget", "skip", "override", "bypass"),
    ),
    rule(
        "ignore_everything",
        r"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+"
        r"(?:you\s+(?:were|have\s+been)\s+told|above|before|so\s+far)",
        anchors=("ignore", "disregard", "forget"),
    ),
    rule(
        "new_instructions",
        r"\b(?:your\s+)?new\s+(?:instructions|rules|system\s+prompt)\s+(?:are|is)\s*:",
        anchors=("new",),
    ),
    rule(
        "reveal_system_prompt",
        rf"\b{_SHOW}\s+(?:me\s+)?(?:your|the)\s+{_SECRET}",
        anchors=("system", "instructions"),
    ),
    rule(
        "persona_override",
        rf"\byou\s+are\s+(?:now\s+)?{_PERSONA}",
        anchors=("you",),
    ),
    rule("do_anything_now", r"\bdo\s+anything\s+now\b", anchors=("anything",)),
    rule(
        "no_restrictions",
        r"\b(?:act|respond|answer|behave)\s+(?:as\s+if\s+you\s+(?:have|had)|without)\s+"
        rf"(?:no\s+)?{_UNFILTERED}\b",
        0.6,
        anchors=("restrictions", "filters", "guidelines", "limitations", "rules"),
    ),
    rule(
        "developer_mode",
        r"\b(?:enable|activate|enter)\s+(?:developer|god|admin|debug)\s+mode\b",
        0.6,
        anchors=("mode",),
    ),
    rule(
        "fake_system_turn",
        r"(?:^|\n)\s*(?:#{2,}|\[|<\|?)\s*(?:system|assistant)\s*(?:\]|\|?>|:)",
        0.6,
        anchors=("system", "assistant"),
    ),
    # Translations of "ignore the previous instructions".
    rule(
        "ignore_previous_de",
        r"\b(?:ignorier(?:e|en)?|vergiss|missachte)\s+(?:(?:alle|die|deine)\s+)*"
        r"(?:vorherigen|bisherigen|obigen|vorigen|früheren)\s+"
        r"(?:anweisungen|instruktionen|befehle|regeln)",
        anchors=("ignorier", "vergiss", "missachte"),
    ),
    rule(
        "ignore_previous_fr",
        r"\b(?:ignore[zr]?|oublie[zr]?)\s+(?:toutes\s+)?(?:les|tes|vos)\s+"
        r"(?:instructions|consignes|règles)\s+(?:précédentes|antérieures|ci-dessus)",
        anchors=("ignore", "oublie"),
    ),
    rule(
        "ignore_previous_es",
        r"\b(?:ignora|ignore|olvida)\s+(?:todas\s+)?(?:las|tus)\s+"
        r"(?:instrucciones|indicaciones|reglas)\s+(?:anteriores|previas)",
        anchors=("ignor", "olvida"),
    ),
    rule(
        "ignore_previous_it",
        r"\b(?:ignora|dimentica)\s+(?:tutte\s+)?le\s+(?:istruzioni|regole)\s+precedenti",
        anchors=("ignora", "dimentica"),
    ),
    rule(
        "ignore_previous_pt",
        r"\b(?:ignore|ignora|esqueça)\s+(?:todas\s+)?as\s+(?:instruções|regras)\s+anteriores",
        anchors=("ignor", "esque"),
    ),
    rule(
        "ignore_previous_ru",
        r"(?:игнорируй|игнорируйте|забудь|забудьте)\s+(?:все\s+)?"
        r"(?:предыдущие|прошлые|прежние)\s+(?:инструкции|указания|правила)",
        anchors=("игнорир", "забуд"),
    ),
    rule(
        "ignore_previous_zh",
        r"(?:忽略|无视|忽视|忘记)(?:之前|以上|先前|上面|前面)(?:的)?(?:所有)?"
        r"(?:指令|指示|说明|规则)",
        anchors=("忽略", "无视", "忽视", "忘记"),
    ),
    rule(
        "ignore_previous_ja",
        r"(?:以前|前|上記)の(?:すべての|全ての)?(?:指示|命令|ルール)を(?:すべて|全て)?無視",
        anchors=("無視",),
    ),
)

# Letters that look like Latin ones (Cyrillic, Greek, Armenian) and digits used as letters,
# folded before matching. The Cyrillic rules are also matched on the text before folding.
_LOOKALIKES = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04bb\u0501\u0261\u0578"
    "\u03bd\u03bf\u03b1\u03b5\u03b9\u03ba\u03c4\u03c5\u03c1\u0461"
    "013457@$",
    "aeopcyxijshdgnvoaeiktupwoieastas",
)
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)
_SPACED = re.compile(r"\b(?:\w[ .\-_*]){3,}\w\b")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def _unspace(match: re.Match[str]) -> str:
    """`i g n o r e` and `i.g.n.o.r.e` back to a word."""
    return re.sub(r"[ .\-_*]", "", match.group(0))


def _decoded(text: str) -> Iterable[str]:
    """Text hidden in base64 runs, when it decodes to readable UTF-8."""
    for run in _BASE64.findall(text):
        padded = run + "=" * (-len(run) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded and sum(c.isprintable() or c.isspace() for c in decoded) >= 0.9 * len(decoded):
            yield decoded


def views(text: str) -> list[str]:
    """The forms of `text` the rules are matched against: normalised (NFKC, casefolded, no
    invisible characters), with look-alikes folded, with spaced-out words joined, and the same
    for every base64 run that decodes to text (each form once). Rules match any run of
    white space with `\\s+`, so spacing needs no normalising of its own."""
    out: list[str] = []
    pending = [text]
    depth = 0
    while pending and depth < 3:
        nxt: list[str] = []
        for item in pending:
            if item.isascii():  # NFKC leaves ASCII alone, and it has no invisible characters
                base = item.lower()
            else:
                base = _INVISIBLE.sub("", unicodedata.normalize("NFKC", item)).casefold()
            folded = base.translate(_LOOKALIKES)
            joined = _SPACED.sub(_unspace, folded)
            for form in (base, folded, joined):
                if form not in out:
                    out.append(form)
            nxt += list(_decoded(item))
        pending = nxt
        depth += 1
    return out


EXCERPT_CHARS = 80


@dataclass(frozen=True, slots=True)
class Finding:
    rules: tuple[str, ...]
    score: float
    excerpt: str  # what the first rule matched (normalised), at most EXCERPT_CHARS


def scan(texts: Sequence[str], rules: Sequence[Rule], threshold: float) -> Finding | None:
    """The rules that match anywhere in `texts`, when their weights reach `threshold`."""
    matched: dict[str, float] = {}
    excerpt = ""
    for text in texts:
        for view in views(text):
            for r in rules:
                if r.name in matched or (r.anchors and not any(a in view for a in r.anchors)):
                    continue
                found = r.pattern.search(view)
                if found:
                    matched[r.name] = r.weight
                    excerpt = excerpt or found.group(0)[:EXCERPT_CHARS]
        if sum(matched.values()) >= threshold:
            break
    score = sum(matched.values())
    if not matched or score < threshold:
        return None
    return Finding(tuple(matched), score, excerpt)
