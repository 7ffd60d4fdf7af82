"""Training: experiment configs, losses, metrics, the staged trainer, evaluation and reports."""
