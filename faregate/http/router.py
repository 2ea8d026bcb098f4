"""Routing a request: exact paths in a dict, patterned paths tried in order after them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from faregate.http.request import Request
from faregate.http.responses import Response, StreamResponse
from faregate.kinds import Kind

Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


class Visibility(StrEnum):
    """Who a route is for."""

    PUBLIC = "public"  # a client route: in the public API (and its OpenAPI document)
    ADMIN = "admin"  # the admin API
    INTERNAL = "internal"  # the operator's probes: /health, /metrics
    CONSOLE = "console"  # the web console's pages and assets, and the API reference


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    methods: frozenset[str]
    handler: Handler
    protocol: str = "openai"  # which error envelope this route answers in
    kind: Kind | None = None  # what a metered client route asks of a model; None: unmetered
    visibility: Visibility = Visibility.PUBLIC
    summary: str = ""
    class_by_model: bool = False  # the handler takes the limits of its model's kind's class


class Router:
    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Route]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Route]]] = []
        self._routes: list[Route] = []

    def add(
        self,
        path: str,
        methods: Iterable[str],
        handler: Handler,
        protocol: str = "openai",
        kind: Kind | str | None = None,
        *,
        visibility: Visibility = Visibility.PUBLIC,
        summary: str = "",
    ) -> None:
        """Register `handler`; `{name}` segments match one path segment, `{name:path}` the rest.
        A `kind` makes it a metered client route: authenticated, restricted, rate-limited and
        logged by the app before the handler runs."""
        self.add_route(
            Route(
                path,
                frozenset(methods),
                handler,
                protocol,
                None if kind is None else Kind(kind),
                visibility,
                summary,
            )
        )

    def add_route(self, route: Route) -> None:
        """Register `route`; a method and path registered twice is a programming error."""
        path, methods = route.path, route.methods
        if "{" not in path:
            table = self._exact.setdefault(path, {})
        else:
            regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", path)
            regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
            compiled = re.compile(f"^{regex}$")
            for pattern, existing in self._patterns:
                if pattern.pattern == compiled.pattern:
                    table = existing
                    break
            else:
                table = {}
                self._patterns.append((compiled, table))
        taken = sorted(methods & table.keys())
        if taken:
            raise ValueError(f"{', '.join(taken)} {path} is already registered")
        for method in methods:
            table[method] = route
        self._routes.append(route)

    def routes(self) -> list[Route]:
        """Every registered route, in the order registered."""
        return list(self._routes)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, whether the path exists under another method)."""
        table = self._exact.get(path)
        params: dict[str, str] = {}
        if table is None:
            for pattern, candidate in self._patterns:
                m = pattern.match(path)
                if m:
                    table, params = candidate, m.groupdict()
                    break
        if table is None:
            return None, {}, False
        route = table.get(method)
        return route, params, route is None

    def methods_for(self, path: str) -> list[str]:
        """The methods a path answers (for the `Allow` header of a 405)."""
        table = self._exact.get(path)
        if table is None:
            for pattern, candidate in self._patterns:
                if pattern.match(path):
                    table = candidate
                    break
        return sorted(table or ())

    def protocol_for(self, path: str) -> str:
        """The envelope for a path nothing matched: by its prefix."""
        return "llmage" if path.startswith("/llmage") else "openai"
