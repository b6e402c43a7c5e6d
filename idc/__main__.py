from idc.cli import main

raise SystemExit(main())
