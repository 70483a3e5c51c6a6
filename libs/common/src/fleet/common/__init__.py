"""Fleet service kit."""
