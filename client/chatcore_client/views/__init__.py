"""Tk widgets of the client: windows and dialogs with callbacks, and no socket code."""
