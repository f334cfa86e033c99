"""Concrete strategies; each module holds a strategy class and its frozen config."""
