import sys

from batch_poller.early_signals import defer_stop_signals

# Before the command line's imports: a stop asked for during them must end in exit status 0.
defer_stop_signals(sys.argv[1:])

from batch_poller.cli import main  # noqa: E402

raise SystemExit(main())
