"""JSON Schemas: the canonical event and the data of each provider (``data/<provider>.json``)."""
