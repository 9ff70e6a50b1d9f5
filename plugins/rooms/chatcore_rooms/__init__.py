"""chatcore plugin ``rooms``: group conversations with roles, per-room history, read markers and mentions."""
