"""The relational schema (SQLAlchemy Core), shared by migrations, admin paths and tests."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from faregate.billing.bounds import MAX_AMOUNT

metadata = MetaData()

# Timestamps are integer epoch milliseconds; money is integer micro-credits, each money
# column checked by the database (migration 0009): an integer (SQLite would store a float or
# a string) within the range of amounts.


def amount_check(
    table: str,
    column: str,
    low: int | None = 0,
    high: int | None = MAX_AMOUNT,
    *,
    nullable: bool = False,
) -> list[CheckConstraint]:
    """The CHECK of a money column, `ck_TABLE_COLUMN`, in its SQLite and PostgreSQL forms."""
    name = f"ck_{table}_{column}"
    out = []
    for dialect in ("sqlite", "postgresql"):
        parts = [f"typeof({column}) = 'integer'"] if dialect == "sqlite" else []
        if low is not None and high is not None:
            parts.append(f"{column} BETWEEN {low} AND {high}")
        elif low is not None:
            parts.append(f"{column} >= {low}")
        if not parts:
            continue
        test = " AND ".join(parts)
        text_ = f"{column} IS NULL OR ({test})" if nullable else test
        out.append(CheckConstraint(text_, name=name).ddl_if(dialect=dialect))
    return out


accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", Text, nullable=False),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", BigInteger, nullable=False),
    Column("plan", String(64), nullable=True),
    Column("limits", Text, nullable=True),  # JSON: overrides of the plan's limits
    Column("spend_limit", BigInteger, nullable=True),
    Column("spend_period", String(10), nullable=True),  # daily | weekly | monthly
    *amount_check("accounts", "balance"),
    *amount_check("accounts", "spend_limit", nullable=True),
    Column("restrictions", Text, nullable=True),  # JSON: as a key's, for all its keys
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("allowed_models", Text, nullable=True),  # JSON list, NULL = every model
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("limits", Text, nullable=True),  # JSON: overrides of the plan's limits
    Column("restrictions", Text, nullable=True),  # JSON: ips, origins, time windows
    Column("guards", Text, nullable=True),  # JSON: per-guard settings of the key
    Column("spend_limit", BigInteger, nullable=True),
    Column("spend_period", String(10), nullable=True),
    Column("user_id", String(40), nullable=True),
    *amount_check("api_keys", "spend_limit", nullable=True),
    Index("ix_api_keys_account", "account_id"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(10), nullable=False),  # open | settled | released
    Column("model", Text, nullable=True),
    Column("request_id", String(40), nullable=True),
    Column("instance_id", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    Column("cost", BigInteger, nullable=True),
    Column("spend_windows", Text, nullable=True),  # JSON: the spend windows the hold counts in
    Column("owner", String(8), nullable=True),  # NULL: a request; 'job': ends with its job only
    *amount_check("holds", "amount"),
    *amount_check("holds", "cost", high=None, nullable=True),
    Index(
        "ix_holds_open_by_account",
        "account_id",
        sqlite_where=text("status = 'open'"),
        postgresql_where=text("status = 'open'"),
    ),
)

ledger = Table(
    "ledger",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # grant | adjust | hold | settle | release
    Column("amount", BigInteger, nullable=False),  # signed change of the balance
    Column("hold_id", String(40), nullable=True),
    Column("key_id", String(40), nullable=True),
    Column("model", Text, nullable=True),
    Column("cost", BigInteger, nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("cached_tokens", Integer, nullable=True),
    Column("reasoning_tokens", Integer, nullable=True),
    Column("estimated", Boolean, nullable=False, server_default=text("false")),
    Column("note", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("units", Text, nullable=True),  # JSON {meter: count}: units billed beyond tokens
    *amount_check("ledger", "amount", -MAX_AMOUNT),
    *amount_check("ledger", "cost", high=None, nullable=True),
    Index("ix_ledger_account", "account_id", "id"),
)

instances = Table(
    "instances",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
)

admin_keys = Table(
    "admin_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("idem_key", String(255), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("state", String(10), nullable=False),  # running | done
    Column("status", Integer, nullable=True),
    Column("headers", Text, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_idempotency_expires", "expires_at"),
)

spend_windows = Table(
    "spend_windows",
    metadata,
    Column("scope", String(10), primary_key=True),  # key | account
    Column("scope_id", String(40), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("spent", BigInteger, nullable=False, server_default=text("0")),
    *amount_check("spend_windows", "spent", None, None),
)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
)

account_members = Table(
    "account_members",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),  # owner | member
    Column("created_at", BigInteger, nullable=False),
)

redemption_codes = Table(
    "redemption_codes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, server_default=text("0")),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    *amount_check("redemption_codes", "amount", 1),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("code_id", String(40), ForeignKey("redemption_codes.id"), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(80), nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_audit_at", "at"),
)

usage_log = Table(
    "usage_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", BigInteger, nullable=False),
    Column("request_id", String(40), nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("account_id", String(40), nullable=True),
    Column("route", String(16), nullable=False),
    Column("model", Text, nullable=True),
    Column("deployment", Text, nullable=True),
    Column("prompt_tokens", Integer, nullable=False, server_default=text("0")),
    Column("completion_tokens", Integer, nullable=False, server_default=text("0")),
    Column("cost", BigInteger, nullable=False, server_default=text("0")),
    Column("latency_ms", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Column("cached", Boolean, nullable=False, server_default=text("false")),
    Column("estimated", Boolean, nullable=False, server_default=text("false")),
    Column("units", Text, nullable=True),  # JSON {meter: count}: units billed beyond tokens
    Column("guard", Text, nullable=True),  # JSON: the guard and detector that refused it
    Index("ix_usage_at", "at"),
    Index("ix_usage_account_at", "account_id", "at"),
    Index("ix_usage_key_at", "key_id", "at"),
    Index("ix_usage_model_at", "model", "at"),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("account_id", String(40), primary_key=True),
    Column("key_id", String(40), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Index("ix_usage_daily_account", "account_id", "day"),
    Index("ix_usage_daily_key", "key_id", "day"),
)

guard_reviews = Table(
    "guard_reviews",
    metadata,
    Column("request_id", String(40), primary_key=True),  # a refused request's usage-log row
    Column("verdict", String(16), nullable=False),  # false_positive | confirmed
    Column("note", Text, nullable=True),
    Column("actor", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

price_overrides = Table(
    "price_overrides",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("input", BigInteger, nullable=False),
    Column("output", BigInteger, nullable=False),
    Column("cached_input", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("meters", Text, nullable=True),  # JSON: the price's other fields (reasoning, image...)
    *amount_check("price_overrides", "input"),
    *amount_check("price_overrides", "output"),
    *amount_check("price_overrides", "cached_input", nullable=True),
)

plan_overrides = Table(
    "plan_overrides",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("limits", Text, nullable=False),  # JSON of a plan: {"chat": {"rpm": 60}, ...}
    Column("updated_at", BigInteger, nullable=False),
)

_ACTIVE_JOB = text("state IN ('queued', 'running')")

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("model", Text, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("surface", String(24), nullable=False),  # the API the client used
    Column("state", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("upstream_id", Text, nullable=True),
    Column("deployment", Text, nullable=True),
    Column("request", Text, nullable=False),  # JSON: the request's body and parameters
    Column("hold_id", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),  # the amount held
    Column("lease_owner", String(40), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("next_poll_at", BigInteger, nullable=False),
    Column("polls", Integer, nullable=False, server_default=text("0")),
    Column("result", Text, nullable=True),  # JSON
    Column("error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Index("ix_jobs_due", "next_poll_at", sqlite_where=_ACTIVE_JOB, postgresql_where=_ACTIVE_JOB),
    Index("ix_jobs_account", "account_id", "created_at"),
)

responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),  # resp_...
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("model", Text, nullable=False),
    Column("input_items", Text, nullable=False),  # JSON: this request's input items
    Column("response", Text, nullable=False),  # JSON: the response object
    Column("context", Text, nullable=False),  # JSON: every item a next turn continues from
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_responses_account", "account_id"),
    Index("ix_responses_expires", "expires_at"),
)

console_logins = Table(
    "console_logins",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("password_hash", Text, nullable=True),  # argon2id; NULL until a password is set
    Column("operator", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", BigInteger, nullable=False),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # keyed hash of the cookie's token
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("account_id", String(40), nullable=True),  # the account acted for; NULL: the first
    Column("playground_key_id", String(40), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_console_sessions_user", "user_id"),
)

console_resets = Table(
    "console_resets",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)
