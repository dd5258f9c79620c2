"""ctd.models."""
