"""The recorder service: a Socket.IO client of web that records calls (docs/recording.md)."""
