"""Market connectors for any ccxt exchange, order books, cross-venue checks and whale trades.

Only this package imports ccxt; its errors are translated here into :mod:`cryptolake.errors`.
"""
