"""The tracking-lookup benchmark (see bench/README.md). Not shipped, not imported by lacak."""
