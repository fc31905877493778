"""Couriers: the providers that carry orders, and how their news reaches the lifecycle.

One provider per module behind one small interface (`base.Provider`): book an order, cancel
it, ask for a new driver. Inbound messages (callbacks, driver posts, simulator steps) become
`Update`s through the same lifecycle transaction as everything else.
"""
