"""The operator's side: accounts, keys and credits, shared by the admin API and the CLI."""
