"""For the test servers only (dagster_server.py puts this folder on their PYTHONPATH): the backfill daemon ticks
every TQC_TEST_DAEMON_INTERVAL_S seconds instead of every 30.

Dagster reads that interval from a module constant (dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS,
read when the backfill loop starts) that no instance setting reaches; a backfill advances one level of the graph
per tick, so at 30 s the v2 backfill spends most of its ~3 minutes waiting. Everything else runs unchanged.
"""

import os

if os.environ.get("TQC_TEST_DAEMON_INTERVAL_S"):
    import dagster._daemon.controller

    dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS = float(os.environ["TQC_TEST_DAEMON_INTERVAL_S"])
