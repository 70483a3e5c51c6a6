"""User service: accounts, roles, credentials, credit wallet and holds, notifications, feedback."""
