"""Command-line interface: one module per command, each exposing ``main(argv) -> int``."""
