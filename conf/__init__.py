"""The Hydra config groups of the training app (YAML), shipped as package data."""
