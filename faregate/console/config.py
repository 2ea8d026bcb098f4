"""The `[console]` section: who may sign up, sessions and their cookie."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    signup: Literal["open", "invite", "closed"] = "closed"
    invite_code: str | None = Field(default=None, min_length=8, repr=False)
    signup_credits: int = Field(default=0, ge=0, le=10**15)  # micro-credits granted on sign-up
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    reset_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    cookie_secure: Literal["auto", "always", "never"] = "auto"  # auto: when served over TLS

    def model_post_init(self, _: object) -> None:
        if self.signup == "invite" and not self.invite_code:
            raise ValueError("console.invite_code: required when console.signup is 'invite'")
