"""chatcore's Tkinter desktop client and the headless client library it is built on."""

__version__ = "0.1.0"
