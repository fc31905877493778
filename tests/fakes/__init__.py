"""Stand-ins for the outside world that tests start on loopback."""
