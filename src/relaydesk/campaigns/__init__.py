"""Multi-SMS campaigns: one message to many recipients, paced, exactly once."""
