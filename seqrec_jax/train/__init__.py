"""Training: state, objectives, jitted steps, checkpoints and the loop."""
