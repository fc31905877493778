"""The gosend provider: outbound client (client.py) and inbound callbacks (inbound.py)."""
