from engine.commands import main

raise SystemExit(main())
