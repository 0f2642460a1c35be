"""Socket.IO transport."""
