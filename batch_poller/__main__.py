from batch_poller.entry import main

raise SystemExit(main())
