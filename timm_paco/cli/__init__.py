"""The drivers' plumbing: train.py's argument set."""
