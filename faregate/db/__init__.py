"""Storage: the schema, the engines and the migrations that shape them."""
