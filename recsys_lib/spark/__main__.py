"""``python -m recsys_lib.spark``: the synthetic scoring job from the command line."""

from recsys_lib.spark.jobs import main

raise SystemExit(main())
