from gptmini.cli import main

raise SystemExit(main())
