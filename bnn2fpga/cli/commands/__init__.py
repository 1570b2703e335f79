"""One module per command: ``NAME``, ``add_arguments(sub)`` (its parser, arguments and handler) and ``run(args)``."""
