"""Benchmark report: the least disturbed window per setting, ratios and the Markdown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hops import describe

CONCURRENCIES = (1, 32)


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def mode(row: dict[str, Any]) -> str:
    return "stream" if row["stream"] else "json"


Key = tuple[str, bool, int]


def key_of(row: dict[str, Any]) -> Key:
    return row["target"], row["stream"], row["concurrency"]


def choose(rows: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Per setting, the window least disturbed by other processes (not the fastest one)."""
    best: dict[Key, dict[str, Any]] = {}
    for row in rows:
        key = key_of(row)
        if key not in best or row["other_load"] < best[key]["other_load"]:
            best[key] = row
    return best


def gateways(best: dict[Key, dict[str, Any]]) -> list[str]:
    """The gateway targets measured: "faregate" (SQLite) first, then "faregate-pg"."""
    return sorted({key[0] for key in best} - {"direct"})


def pairs(best: dict[Key, dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(direct, gateway) rows measured at the same setting, for every gateway target."""
    for stream in (False, True):
        for c in sorted({key[2] for key in best}):
            for name in gateways(best):
                if ("direct", stream, c) in best and (name, stream, c) in best:
                    yield best[("direct", stream, c)], best[(name, stream, c)]


def comparisons(best: dict[Key, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for d, f in pairs(best):
        cmp: dict[str, Any] = {
            "target": f["target"],
            "stream": d["stream"],
            "concurrency": d["concurrency"],
            "rps_ratio": f["rps"] / d["rps"] if d["rps"] else None,
            "added_p50_ms": f["p50_ms"] - d["p50_ms"],
            "added_p99_ms": f["p99_ms"] - d["p99_ms"],
            "added_p999_ms": f["p999_ms"] - d["p999_ms"],
            "added_ttfb_p50_ms": f["ttfb_p50_ms"] - d["ttfb_p50_ms"] if d["stream"] else None,
            "added_ttfb_p99_ms": f["ttfb_p99_ms"] - d["ttfb_p99_ms"] if d["stream"] else None,
        }
        out.append(cmp)
    return out


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    hops = result.get("hops")  # absent from results recorded before the hop probe
    rows = result["results"]
    best = choose(rows)
    added = {(c["target"], c["stream"], c["concurrency"]): c for c in result["comparisons"]}
    lines = [
        "## Environment",
        "",
        f"- Faregate source: {env['faregate_source']}",
        f"- CPU: {env['cpu_model']} ({env['cpus']} cores), kernel {env['kernel']}",
        f"- Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()),
        f"- placement: {result['placement']}",
        *([f"- one hop between two processes: {describe(hops)}"] if hops else []),
        f"- load generator: {result['generator']}",
        f"- windows: {result['warmup_s']} s warm-up, then {result['duration_s']} s measured "
        f"(cap {result['cap']:,} requests), {result['rounds']} round(s); before each window "
        f"the run waits up to {result['quiet_wait_s']} s for other processes to go quiet",
        "",
        "## Results",
        "",
        "Latency is to the last byte (for streams: the whole stream); TTFB is to the first body "
        "byte; times in ms. Added: Faregate minus direct at the same setting. GW CPU: the "
        "gateway process's utime+stime over the window / requests. Core 0: generator + "
        "simulator CPU / window. Other: CPU used by processes not ours during the window, in "
        "cores (the machine may be shared; above ~0.1 the window is disturbed).",
        "",
        "| target | mode | c | r/s | p50 | p99 | p99.9 | TTFB p50 | TTFB p99 | added p50 "
        "| added p99 | added p99.9 | errors | GW CPU ms/req | core 0 busy | other |",
        "| --- | --- " + "| ---: " * 14 + "|",
    ]
    shown: set[int] = set()
    for d, f in pairs(best):
        cmp = added[(f["target"], d["stream"], d["concurrency"])]
        for r in (d, f):
            if id(r) in shown:
                continue
            shown.add(id(r))
            extra = cmp if r is f else {}
            lines.append(
                f"| {r['target']} | {mode(r)} | {r['concurrency']} "
                f"| {fmt(r['rps'], 0)} | {fmt(r['p50_ms'], 3)} | {fmt(r['p99_ms'], 3)} "
                f"| {fmt(r.get('p999_ms'), 3)} "
                f"| {fmt(r['ttfb_p50_ms'], 3)} | {fmt(r['ttfb_p99_ms'], 3)} "
                f"| {fmt(extra.get('added_p50_ms'), 3)} | {fmt(extra.get('added_p99_ms'), 3)} "
                f"| {fmt(extra.get('added_p999_ms'), 3)} "
                f"| {r['errors']} | {fmt(r.get('gateway_cpu_ms_per_req'), 3)} "
                f"| {r['core0_busy']:.0%} | {r['other_load']:.2f} |"
            )
    lines += [
        "",
        "## Faregate as a ratio of the direct baseline (same run)",
        "",
        "| target | mode | c | r/s | p50 | p99 | TTFB p50 | gateway core busy |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d, f in pairs(best):
        lines.append(
            f"| {f['target']} | {mode(d)} | {d['concurrency']} "
            f"| {ratio(f['rps'], d['rps'])} | {ratio(f['p50_ms'], d['p50_ms'])} "
            f"| {ratio(f['p99_ms'], d['p99_ms'])} "
            f"| {ratio(f['ttfb_p50_ms'], d['ttfb_p50_ms']) if d['stream'] else '-'} "
            f"| {f['gateway_core_busy']:.0%} |"
        )
    if result["rounds"] > 1:
        lines += [
            "",
            "## Spread over the rounds (every window)",
            "",
            "| target | mode | c | r/s min-max | p50 min-max | other load min-max |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for key in best:
            same = [r for r in rows if key_of(r) == key]
            rps = [r["rps"] for r in same]
            p50 = [r["p50_ms"] for r in same]
            other = [r["other_load"] for r in same]
            lines.append(
                f"| {key[0]} | {'stream' if key[1] else 'json'} | {key[2]} "
                f"| {min(rps):,.0f}-{max(rps):,.0f} | {min(p50):.3f}-{max(p50):.3f} "
                f"| {min(other):.2f}-{max(other):.2f} |"
            )
    mem = result["gateway_memory_kb"]
    gen = [r["generator_cpu_ms_per_req"] for r in best.values() if r["generator_cpu_ms_per_req"]]
    lines += [
        "",
        f"Gateway peak memory (VmHWM): {mem['VmHWM'] / 1024:.1f} MiB "
        f"(RSS at the end {mem['VmRSS'] / 1024:.1f} MiB); simulator VmHWM "
        f"{result['simulator_memory_kb']['VmHWM'] / 1024:.1f} MiB.",
    ]
    if pg_mem := result.get("gateway_pg_memory_kb"):
        lines.append(
            f"faregate-pg ({result['pg_gateway']}): VmHWM {pg_mem['VmHWM'] / 1024:.1f} MiB; "
            "its database server's CPU counts in the 'other' column."
        )
    lines += [
        f"Errors in all windows: {sum(r['errors'] for r in rows)} "
        f"(every counted response: HTTP 200 and a complete body).",
        f"Load generator CPU: {min(gen):.3f}-{max(gen):.3f} ms per request.",
        "Note: the load generator shares core 0 with the simulator; the gateway is alone on "
        "core 1. The direct rows show what core 0 (simulator + generator) can serve; in the "
        "Faregate rows, 'core 0 busy' well under 100% with the gateway's core near 100% means "
        "the gateway is the bottleneck.",
    ]
    return "\n".join(lines)
