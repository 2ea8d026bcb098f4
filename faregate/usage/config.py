"""The `[usage]` config section: how long raw usage rows are kept and how often they roll up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UsageConfig(BaseModel):
    """Raw `usage_log` rows older than `retention_days` are deleted once rolled up into
    `usage_daily` (kept forever); the rollup runs every `rollup_interval_seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention_days: int = Field(default=90, ge=1, le=36_500)
    rollup_interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
