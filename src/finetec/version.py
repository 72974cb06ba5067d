"""The package version (one place; ``finetec.__version__`` and checkpoints read it)."""
__version__ = "0.1.0"
