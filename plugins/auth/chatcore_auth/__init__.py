"""chatcore plugin ``auth``: accounts, login and presence."""

NAME = "auth"  # the plugin's name: its entry point, data directory and key in ``session.state``
