"""ctd.losses."""
