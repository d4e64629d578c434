"""The normalizer: raw provider events in, canonical CloudEvents out; what cannot be mapped is dead-lettered."""
