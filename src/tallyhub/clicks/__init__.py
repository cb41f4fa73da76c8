"""Click tracking: `/__track` with exact counters and tag sets under load."""
