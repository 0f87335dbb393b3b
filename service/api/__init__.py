"""The HTTP API: FastAPI app factory, routes per resource, schemas, error handlers."""
