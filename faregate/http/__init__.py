"""ASGI plumbing: the request, responses and the route table, with nothing in between."""
