"""Message handlers of the user service: saga commands and the events it reacts to."""
