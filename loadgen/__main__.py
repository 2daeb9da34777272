from loadgen.commands.cli import main

raise SystemExit(main())
