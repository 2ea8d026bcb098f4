"""Build the media store and its facade from the `[media]` section."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from faregate.media.config import MediaConfig
from faregate.media.local import LocalMediaStore
from faregate.media.service import Media
from faregate.media.signing import Signer, load_secret
from faregate.media.store import MediaStore


def make_store(config: MediaConfig, home: Path, environ: Mapping[str, str]) -> MediaStore:
    if config.backend == "s3":
        from faregate.media.s3 import S3MediaStore

        return S3MediaStore.from_config(config, environ)
    directory = Path(config.directory) if config.directory else home / "media"
    return LocalMediaStore(directory, config.max_bytes)


def make_media(
    config: MediaConfig,
    home: Path,
    trusted_proxies: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> Media:
    """The facade over the configured backend, signing with the configured secret."""
    signer = Signer(load_secret(config.secret_env, home, environ))
    return Media(make_store(config, home, environ), signer, config, trusted_proxies)
