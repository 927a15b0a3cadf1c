"""Development tooling: never shipped in an image."""
