"""The web console: pages for clients and operators, served by the gateway itself."""
