"""Model catalog, loading (package → cache → hub), device choice and per-family adapters."""
