"""chatcore plugin ``auth``: accounts, login and presence."""
