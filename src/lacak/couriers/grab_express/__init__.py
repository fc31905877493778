"""The grab_express provider: outbound client (client.py) and inbound callbacks (inbound.py)."""
