"""ctd.trainers."""
