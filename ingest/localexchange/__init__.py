"""A local exchange speaking Binance's spot REST/websocket API, replaying real recorded data."""
