"""Execution clients: one interface, a paper implementation now, a ccxt one later."""
