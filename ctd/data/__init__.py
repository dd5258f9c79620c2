"""ctd.data."""
