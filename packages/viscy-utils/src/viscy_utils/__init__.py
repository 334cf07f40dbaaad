"""viscy_utils."""
