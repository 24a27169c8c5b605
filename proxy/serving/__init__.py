"""The serving process: forwarding, limits, fingerprints, traceparent and one journal append per exchange."""
