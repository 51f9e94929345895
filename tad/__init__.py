"""Command-line entry point package (`tad`)."""
