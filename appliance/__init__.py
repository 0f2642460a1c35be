"""A self-hosted real-time communications appliance: chat, presence, files and calls on one box."""

__version__ = "0.1.0"
