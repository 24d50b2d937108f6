"""Model registry backends that ship with mlpipe (each a plugin, found by name)."""
