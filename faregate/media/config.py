"""The `[media]` config section: where generated media is kept, and for how long."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MIB = 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3Config(_Strict):
    """An S3-compatible bucket shared by every gateway process."""

    endpoint_url: str | None = None  # None: AWS itself; else MinIO, R2, Ceph, ...
    bucket: str | None = None
    region: str | None = None
    prefix: str = "media/"
    access_key_env: str | None = None  # None: the AWS SDK's own credential chain
    secret_key_env: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("use an http:// or https:// URL")
        return url


class MediaConfig(_Strict):
    backend: Literal["local", "s3"] = "local"
    directory: str | None = None  # None: $FAREGATE_HOME/media
    url_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 86_400)
    retention_seconds: int | None = Field(default=None, ge=1)  # None: url_ttl_seconds
    max_bytes: int = Field(default=100 * MIB, ge=1024)
    public_base_url: str | None = None
    sweep_interval_seconds: float = Field(default=300.0, gt=0)
    secret_env: str | None = None  # None: a secret generated once in $FAREGATE_HOME/media.secret
    s3: S3Config = Field(default_factory=S3Config)

    @property
    def retention(self) -> int:
        """How long a stored item is kept."""
        return (
            self.retention_seconds if self.retention_seconds is not None else self.url_ttl_seconds
        )

    @field_validator("public_base_url")
    @classmethod
    def _base(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith(("http://", "https://")) or "?" in url or "#" in url:
            raise ValueError("use an http:// or https:// URL without a query")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _bucket(self) -> MediaConfig:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError("media.s3.bucket: the s3 backend needs a bucket; set it")
        return self
