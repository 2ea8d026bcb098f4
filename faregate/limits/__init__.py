"""Rate limits: plans, per-route-class limits, in process or shared through Redis."""
