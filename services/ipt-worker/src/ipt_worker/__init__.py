"""IPT Care Service worker."""
