"""chatcore plugin ``filexfer``: store-and-forward file transfer."""
