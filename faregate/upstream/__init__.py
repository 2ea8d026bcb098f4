"""The only place that opens sockets to providers."""
