"""Infrastructure of the ingestor: config, telemetry, the store and the publishers."""
