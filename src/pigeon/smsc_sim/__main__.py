"""``python -m pigeon.smsc_sim [flags]``: run the simulated carrier (see the package docs)."""

from pigeon.smsc_sim import main

raise SystemExit(main())
