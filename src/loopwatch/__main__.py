"""The ``loopwatch`` program: the CLI's commands, and the demo's.

It sits above both: the demo is built on the CLI's helpers and the service, so the CLI
cannot import it, and the program puts the two together.
"""

from __future__ import annotations


def main() -> None:
    from loopwatch.cli.main import cli
    from loopwatch.demo.command import demo

    cli.add_command(demo)
    cli(prog_name="loopwatch")


if __name__ == "__main__":  # python -m loopwatch
    main()
