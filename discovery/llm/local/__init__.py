"""The embedded local model: fetching its weights and serving them on 127.0.0.1."""
