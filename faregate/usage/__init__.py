"""The usage log: one row per request, rolled up per day, queried by operators and clients."""
