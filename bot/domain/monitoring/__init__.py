"""Model monitoring's data and statistics: reference profiles, window counts, drift, accuracy."""
