"""Driver positions: the live point per order and a bounded trail. No webhooks: state only."""
