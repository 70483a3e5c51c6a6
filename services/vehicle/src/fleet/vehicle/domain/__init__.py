"""The vehicle domain: pure rules, no I/O."""
