from datagems.cli import main

raise SystemExit(main())
