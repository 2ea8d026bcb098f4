"""Money: prices, holds, settlement and the append-only ledger."""
