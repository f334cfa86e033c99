"""Ingest: connectors and replay sources that produce validated records to Kafka."""
