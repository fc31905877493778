"""Storage: one store over two databases (embedded SQLite, PostgreSQL)."""
