"""The trip domain: the Trip aggregate, its state machine, route estimation. No I/O."""
