"""HTTP transport: JSON under /api, health, OpenAPI and the web UI files."""
