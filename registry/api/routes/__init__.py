"""One module per concept; each exposes `router`."""
