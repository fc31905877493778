"""The HTTP edge: the only place that knows about status codes."""
