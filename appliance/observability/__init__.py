"""Observability: Prometheus metrics (`metrics`, `access`) and structured log lines (`logs`)."""
