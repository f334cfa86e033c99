"""Event feeds: where a trading node's bars and signals come from (a frame, or Kafka)."""
