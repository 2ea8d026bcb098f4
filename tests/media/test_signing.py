"""Media URL signatures: each part of a signed link matters, and the secret is kept safely."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from faregate.media.signing import SECRET_FILE, Signer, load_secret

MEDIA_ID = "Xk3_9aZ-bq2mP0ZyLw8sVt4uR1oN6cHd"
EXPIRES = 1_900_000_000


def flip(text: str, at: int) -> str:
    swapped = "0" if text[at] != "0" else "1"
    return text[:at] + swapped + text[at + 1 :]


def test_a_signature_verifies_for_its_id_and_expiry() -> None:
    signer = Signer(b"s3cret")
    signature = signer.sign(MEDIA_ID, EXPIRES)
    assert len(signature) == 64
    assert signer.valid(MEDIA_ID, EXPIRES, signature)
    assert signer.valid(MEDIA_ID, EXPIRES, signature.upper())


@pytest.mark.parametrize("at", range(0, 64, 7))
def test_a_tampered_signature_is_refused(at: int) -> None:
    signer = Signer(b"s3cret")
    assert not signer.valid(MEDIA_ID, EXPIRES, flip(signer.sign(MEDIA_ID, EXPIRES), at))


def test_a_signature_does_not_carry_over_to_another_id_or_expiry() -> None:
    signer = Signer(b"s3cret")
    signature = signer.sign(MEDIA_ID, EXPIRES)
    assert not signer.valid(flip(MEDIA_ID, 5), EXPIRES, signature)
    assert not signer.valid(MEDIA_ID, EXPIRES + 1, signature)
    assert not signer.valid(MEDIA_ID, EXPIRES - 3600, signature)
    assert not Signer(b"other").valid(MEDIA_ID, EXPIRES, signature)


@pytest.mark.parametrize("signature", ["", "abc", "z" * 64, "é" * 64, "0" * 63, "0" * 65])
def test_malformed_signatures_are_refused(signature: str) -> None:
    assert not Signer(b"s3cret").valid(MEDIA_ID, EXPIRES, signature)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Signer(b"")


def test_the_secret_comes_from_the_named_variable(tmp_path: Path) -> None:
    assert load_secret("MEDIA_KEY", tmp_path, {"MEDIA_KEY": "shared"}) == b"shared"
    assert not (tmp_path / SECRET_FILE).exists()
    with pytest.raises(ValueError, match="MEDIA_KEY is not set"):
        load_secret("MEDIA_KEY", tmp_path, {})


def test_without_a_variable_a_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_secret(None, home, {})
    assert len(first) >= 48
    path = home / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(None, home, {}) == first
    assert sorted(p.name for p in home.iterdir()) == [SECRET_FILE]
