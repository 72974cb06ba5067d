"""One module per ``finetec`` subcommand (see :mod:`finetec.cli`)."""
