"""The REST API: Litestar app factory, msgspec wire schemas, problem+json errors, routes."""
