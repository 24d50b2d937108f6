"""Pipelines written the way users write theirs (imported as ``examples.<module>``)."""
