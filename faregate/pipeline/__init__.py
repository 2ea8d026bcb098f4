"""The request path, one readable function per call kind."""
