"""Orders: the order record, its lifecycle, and the use-cases that change it."""
