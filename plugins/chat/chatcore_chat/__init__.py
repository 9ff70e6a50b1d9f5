"""chatcore plugin ``chat``: private and broadcast messages, history and offline delivery."""
