"""The model file: its spec (`ModelSpec`), saving and loading, the portable configs, and the exports
to other runtimes; below both `training/` and `inference/`, so prediction never loads the trainer."""
