"""Staff users: accounts, passwords and sign-in."""
