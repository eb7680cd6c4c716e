"""The ``loopwatch`` command: a thin layer over the library."""
