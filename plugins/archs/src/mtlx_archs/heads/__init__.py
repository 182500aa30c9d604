"""Task heads: Z -> one task's prediction (dense or image-level)."""
