"""The import-layer contract: layers import downward only

    api -> pipeline -> routing / billing / limits / auth / usage -> providers -> leaf types

read from every module's imports (its syntax tree, lazy and type-checking imports included)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "faregate"

LEAF = ("faregate.kinds", "faregate.billing.types", "faregate.errors", "faregate.tokens")
LEAF += ("faregate.trace", "faregate.billing.bounds", "faregate.ids")
LEAF += ("faregate.media.types",)
"""The leaf types: what every layer may use."""


@dataclass(frozen=True)
class Rule:
    """Modules under any of `layer` (but not `exempt`) import only `only` (when given) and
    never `never`."""

    name: str
    layer: tuple[str, ...]
    only: tuple[str, ...] | None = None
    never: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()


TOP = ("faregate.pipeline", "faregate.api", "faregate.http", "faregate.admin")
TOP += ("faregate.app", "faregate.cli", "faregate.console")

RULES = (
    Rule("leaf types import only each other", LEAF, only=LEAF),
    Rule(
        "providers import only leaf types and each other",
        ("faregate.providers",),
        only=(*LEAF, "faregate.providers"),
    ),
    Rule(
        "routing, billing, limits, auth and usage stay below the pipeline",
        ("faregate.routing", "faregate.billing", "faregate.limits", "faregate.auth"),
        never=TOP,
    ),
    Rule("usage stays below the pipeline", ("faregate.usage",), never=TOP),
    Rule(
        "the pipeline stays below the api",
        ("faregate.pipeline",),
        never=("faregate.api", "faregate.http", "faregate.app", "faregate.cli"),
    ),
    Rule(
        "the HTTP layer imports only leaf types and itself",
        ("faregate.http",),
        only=(*LEAF, "faregate.http"),
    ),
    Rule(
        "only the cli imports the app or the cli",
        ("faregate",),
        never=("faregate.app", "faregate.cli"),
        exempt=("faregate.cli",),
    ),
    Rule(
        "the media store stays below the pipeline",
        ("faregate.media",),
        never=("faregate.pipeline", "faregate.api", "faregate.admin"),
    ),
)

EXCEPTIONS: dict[tuple[str, str], str] = {
    # (importer, imported): why the rule does not hold there. None today; each one added
    # needs its reason, and the test below fails once it is no longer needed.
}


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The faregate modules `path` imports, resolved to modules where a name is one."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if is_module(sub) else base)
    return {m for m in found if under(m, ("faregate",)) and m != "faregate"}


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    root = PACKAGE.parent
    return (root / rel).with_suffix(".py").exists() or (root / rel / "__init__.py").exists()


MODULES = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def violations(rule: Rule) -> list[str]:
    found = []
    for module, imported in MODULES.items():
        if not under(module, rule.layer) or under(module, rule.exempt):
            continue
        for target in sorted(imported):
            allowed = rule.only is None or under(target, rule.only)
            if allowed and not under(target, rule.never):
                continue
            if (module, target) not in EXCEPTIONS:
                found.append(f"{module} imports {target}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_no_module_imports_upward(rule: Rule) -> None:
    assert violations(rule) == []


def test_the_map_covers_the_package() -> None:
    assert len(MODULES) > 100
    assert "faregate.http.multipart" in MODULES
    assert "faregate.errors" in MODULES["faregate.http.request"]


UPWARD = [
    ("faregate.tokens", "faregate.pipeline.chat", 0),
    ("faregate.providers.openai", "faregate.routing.catalog", 1),
    ("faregate.billing.charge", "faregate.api.common", 2),
    ("faregate.pipeline.chat", "faregate.http.responses", 4),
    ("faregate.http.request", "faregate.config", 5),
    ("faregate.api.front", "faregate.app", 6),
    ("faregate.media.service", "faregate.pipeline.services", 7),
]


@pytest.mark.parametrize(("importer", "imported", "rule"), UPWARD)
def test_an_upward_import_is_caught(importer: str, imported: str, rule: int) -> None:
    """The checker itself, on imports added for the test."""
    MODULES[importer].add(imported)
    try:
        assert f"{importer} imports {imported}" in violations(RULES[rule])
    finally:
        MODULES[importer].discard(imported)


def test_the_cli_may_import_the_app() -> None:
    assert "faregate.app" in MODULES["faregate.cli"]
    assert violations(RULES[-1]) == []


def test_every_exception_is_still_needed() -> None:
    for importer, imported in EXCEPTIONS:
        assert imported in MODULES.get(importer, set()), (
            f"{importer} no longer imports {imported}: remove the exception"
        )


# Libraries that only some deployments use: a gateway that does not use them must not hold
# them in memory (each costs megabytes of every worker's resident set).
OPTIONAL = {
    "asyncpg": "only with a PostgreSQL database",
    "redis": "only with limits.redis_url",
    "aiohttp": "only when a caller's URL is fetched",
    "PIL": "only when image bytes are checked",
    "alembic": "only while migrating (in `serve`, in a child process)",
    "jinja2": "only when a console page is served",
    "argon2": "only when a console password is checked",
    "maxminddb": "only with a country database",
    "swagger_ui_bundle": "only when the API reference's assets are served",
    "opentelemetry": "only with telemetry on",
    "aiobotocore": "only with an S3 media store",
    "av": "only when audio is probed or encoded",
}

LOADED = """
import sys
from faregate.app import App
from faregate.config_load import default_config
App(default_config())
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_the_app_loads_no_optional_library_it_does_not_use(tmp_path: Path) -> None:
    env = {**os.environ, "FAREGATE_HOME": str(tmp_path)}
    env.pop("FAREGATE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", LOADED], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert {name: why for name, why in OPTIONAL.items() if name in loaded} == {}
