"""Fleet command line and embedded runner."""
