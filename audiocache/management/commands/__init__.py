"""One module per command; each parses its arguments, calls a service or selector, and prints."""
