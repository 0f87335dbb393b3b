"""The worker's logic: claim jobs from the database, hold a lease, train, checkpoint, finish."""
