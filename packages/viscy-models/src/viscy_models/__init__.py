"""viscy_models."""
