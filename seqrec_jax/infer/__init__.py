"""Inference: generation of future sequences, loading trained runs."""
