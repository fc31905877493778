"""lacak: a self-hostable instant-delivery tracking server (KiriminAja Mitra v4 compatible)."""

__version__ = "0.1.0"
