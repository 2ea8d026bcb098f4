"""The relational schema (SQLAlchemy Core), shared by migrations, admin paths and tests."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

metadata = MetaData()

# Timestamps are integer epoch milliseconds; money is integer micro-credits.

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", Text, nullable=False),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", BigInteger, nullable=False),
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
    Index("ix_holds_open", "status", "expires_at"),
    Index("ix_holds_instance", "instance_id", "status"),
    Index("ix_holds_account", "account_id", "status"),
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
    Index("ix_ledger_account", "account_id", "id"),
    Index("ix_ledger_hold", "hold_id"),
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
