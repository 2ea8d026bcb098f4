"""The `[video]` section: how jobs are polled and timed out, per-model durations, llmid aliases."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Seconds = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoModel(_Strict):
    """What one video model accepts and how long its jobs may take."""

    min_seconds: int = Field(default=1, ge=1)
    max_seconds: int = Field(default=20, ge=1, le=600)
    default_seconds: int = Field(default=5, ge=1)
    default_resolution: str | None = None  # e.g. "720p"; also the price variant when unset
    timeout_seconds: Seconds | None = None  # None: [video] timeout_seconds

    @model_validator(mode="after")
    def _ordered(self) -> VideoModel:
        if not self.min_seconds <= self.default_seconds <= self.max_seconds:
            raise ValueError("set min_seconds <= default_seconds <= max_seconds")
        return self


class VideoJobs(_Strict):
    """Polling and limits of video jobs; `models` and `aliases` name models of kind video."""

    tick_seconds: Seconds = 1.0  # how often each process looks for due jobs
    first_poll_seconds: Seconds = 5.0  # the first upstream poll after the submit
    max_poll_interval_seconds: Seconds = 60.0
    backoff: float = Field(default=1.5, ge=1.0, le=10.0)  # poll interval growth per poll
    lease_seconds: Seconds = 120.0  # a poll's lease; a crashed process's jobs wait this long
    batch: int = Field(default=16, ge=1, le=1000)  # jobs one process polls at once
    timeout_seconds: Seconds = 3600.0  # a job not finished by then expires (hold released)
    max_files: int = Field(default=16, ge=0, le=64)  # input files of one job
    retention_seconds: Seconds | None = None  # finished files kept; None: [media] retention
    aliases: dict[str, str] = Field(default_factory=dict)  # seed ids (`llmid`) -> model
    models: dict[str, VideoModel] = Field(default_factory=dict)

    def model(self, name: str) -> VideoModel:
        return self.models.get(name) or _DEFAULT

    def timeout_of(self, name: str) -> float:
        own = self.model(name).timeout_seconds
        return own if own is not None else self.timeout_seconds


_DEFAULT = VideoModel()
