"""Management commands of the library: scanlibrary, makedemolibrary, quickstart."""
