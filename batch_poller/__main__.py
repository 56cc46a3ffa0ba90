from batch_poller.cli import main

raise SystemExit(main())
