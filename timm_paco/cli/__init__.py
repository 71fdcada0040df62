"""The drivers' plumbing: train.py's and validate.py's argument sets, refusals and build steps, one module per
step (docs/design.md, "Drivers")."""
