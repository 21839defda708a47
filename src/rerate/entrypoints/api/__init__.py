"""The service: REST API and web UI on one FastAPI application (``rerate serve``)."""
