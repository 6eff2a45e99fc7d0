from loanstack.cli import main

raise SystemExit(main())
