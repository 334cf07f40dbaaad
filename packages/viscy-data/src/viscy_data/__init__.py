"""viscy_data."""
