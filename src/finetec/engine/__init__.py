"""Training, evaluation, checkpoints and distributed helpers."""
