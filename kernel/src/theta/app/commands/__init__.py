"""One module per `git theta` subcommand; each defines `register(add)` (see `theta.app.cli`)."""
