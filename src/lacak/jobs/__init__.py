"""Due work kept in the database: any process may claim it, each piece runs once."""
