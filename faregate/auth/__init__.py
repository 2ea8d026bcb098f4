"""Who is calling: API keys and admin credentials."""
