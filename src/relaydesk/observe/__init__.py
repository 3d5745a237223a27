"""Watching relaydesk run: liveness (`/health`), readiness (`/ready`) and Prometheus
metrics (`/metrics`). It reads every domain's tables, so it sits with the application,
above the domains."""
