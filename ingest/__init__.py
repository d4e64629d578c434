"""The ingest gateway: verify each webhook on its raw bytes, publish it to Kafka, then answer."""
