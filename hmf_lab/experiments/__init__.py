"""Layer 5, experiments: the cell pipeline and grid, bench, report, leaderboard and the trade-off tables.
Return data (tables, results); the course layer plots them. Builds on every layer below, never on the course."""
