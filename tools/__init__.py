"""Commands and launchers that span stages: they sit above ``ingest``, ``normalizer`` and
``sinks`` and may use all of them; the core and the stages never import them.

``hookbus verify``, ``normalize``, ``replay``, ``dev`` and ``send``, and the launchers of a
local Kafka broker and a throwaway PostgreSQL cluster that ``hookbus dev``, the tests and
the bench start.
"""
