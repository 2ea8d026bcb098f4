"""Guards: checks of a request's content before it is held for or sent upstream."""
