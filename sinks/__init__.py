"""Sinks: pluggable consumers of the canonical events topic, found through the ``hookbus.sinks`` entry points."""
