"""One module per command; each parses its arguments, calls the library, and prints."""
