"""ctd.alignment."""
