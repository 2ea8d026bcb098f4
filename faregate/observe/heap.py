"""The garbage collector once the gateway has started: what startup built is frozen out of
every later collection, and young collections run less often."""

from __future__ import annotations

import gc


def settle(freeze: bool, threshold: int) -> None:
    """Collect once and (with `freeze`) move every object alive now (config, catalog, modules,
    pools) to the permanent generation; set the young generation's threshold to `threshold`
    allocations (0 keeps the interpreter's). Full collections then scan only what requests
    left behind, instead of pausing the loop over the whole heap."""
    if freeze:
        gc.collect()
        gc.freeze()
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
