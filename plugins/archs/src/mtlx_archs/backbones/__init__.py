"""Backbones: the shared encoders (input -> Z)."""
