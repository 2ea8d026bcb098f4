"""The official OpenAI OpenAPI spec for shape tests: where it is, and its schemas as JSON Schema."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from harness import ROOT

SPEC = Path(
    os.environ.get("FAREGATE_TEST_OPENAI_SPEC")
    or ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"
)
requires_spec = pytest.mark.skipif(
    not SPEC.is_file(),
    reason=f"the OpenAI spec is not at {SPEC}: set FAREGATE_TEST_OPENAI_SPEC to check the shapes",
)


def nullable(node: Any) -> Any:
    """OpenAPI's `nullable: true` as JSON Schema: null becomes one more allowed type."""
    if isinstance(node, list):
        return [nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def load_components() -> dict[str, Any]:
    """`{"components": ...}` of the spec, read once per test session."""
    spec = yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    return {"components": nullable(spec["components"])}


def validate(components: dict[str, Any], name: str, instance: Any) -> None:
    """Validate `instance` against the spec's schema `name` (jsonschema raises when not)."""
    schema = {"$ref": f"#/components/schemas/{name}", **components}
    jsonschema.Draft202012Validator(schema).validate(instance)


@cache
def openai_validator(name: str) -> Any:
    """A JSON Schema validator of the spec's schema `name`."""
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", **load_components()}
    )
