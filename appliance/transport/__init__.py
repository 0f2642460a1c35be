"""Transport layer: HTTP routes and Socket.IO handlers. Parse, authorise, call a service."""
