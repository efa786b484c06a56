"""The ``lighthpc`` executable. A Ctrl-C at any moment, even while Python is still importing
the CLI (seconds on a busy machine), ends in the one-line contract: ``lighthpc: Interrupted:
…`` on stderr and exit 130, never a traceback nor click's bare "Aborted!" with exit 1."""

from __future__ import annotations

import faulthandler
import signal
import sys

EXIT_INTERRUPTED = 128 + signal.SIGINT
# ``kill -USR2 <pid>`` prints every thread's stack to stderr and the CLI goes on: how a
# hang (a shutdown that never ends) is diagnosed on a machine without a debugger.
STACKS_SIGNAL = signal.SIGUSR2


def _interrupted(when: str) -> None:
    try:
        sys.stderr.write(f"lighthpc: Interrupted: SIGINT {when}\n")
        sys.stderr.flush()
    finally:
        sys.exit(EXIT_INTERRUPTED)


def run() -> None:
    faulthandler.register(STACKS_SIGNAL, all_threads=True)
    # A shell starts a background job with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: `lighthpc local up &` would survive `kill -INT`. Ctrl-C must stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        import click

        from cli.main import main
    except KeyboardInterrupt:
        _interrupted("before anything started")
    try:
        # Not standalone: click would turn a KeyboardInterrupt into "Aborted!" and exit 1.
        code = main.main(prog_name="lighthpc", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _interrupted("while the command ran")  # the commands that start things clean up first
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    run()
