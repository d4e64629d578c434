"""Commands and launchers that span stages: they sit above ingest, normalizer and sinks; the core never imports them."""
