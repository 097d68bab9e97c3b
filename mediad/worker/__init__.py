"""The worker process: runs one download tool per job and reports what it does."""
