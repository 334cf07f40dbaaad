"""viscy_transforms."""
