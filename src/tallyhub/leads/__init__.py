"""Lead intake: LINE account groups, incoming leads, dedup, daily counts (seed 000)."""
