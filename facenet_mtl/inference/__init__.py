"""Using a trained model: load it, find faces, predict, annotate."""
