"""Provider simulator: deterministic upstream protocols with scriptable faults."""
