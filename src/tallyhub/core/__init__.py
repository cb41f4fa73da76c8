"""The shared kit: database edge, group commit, business days, jobs, auth, realtime, metrics."""
