"""The operator's own fleet: driver accounts, their tokens, and what drivers may do to orders."""
