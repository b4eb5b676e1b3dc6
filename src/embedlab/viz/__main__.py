"""``python -m embedlab.viz <run output dir>``: t-SNE map of a run (see embedlab.viz.cli)."""

from embedlab.viz.cli import main

raise SystemExit(main())
