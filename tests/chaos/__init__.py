"""A fault campaign: faults by the dozen on a running platform, then every row counted.

`make chaos` (``ARGS="--kills 100 ..."``) brings a platform up in a fresh state dir, the way
`make up` does (own_platform.py), and runs the campaign on it (campaign.py), which:

1. sends events in the tutorial's format at a steady rate from a thread of its own, with
   malformed records among them (stream.py);
2. injects faults one at a time, in a shuffled order, each at a random moment: SIGKILL and
   SIGSTOP of the streaming driver, Kafka broker and Airflow scheduler restarts (faults.py);
3. leaves recovery to the platform's supervisor DAG, and only watches for it (faults.py);
4. stops the stream and sends page views far enough ahead to close every window and
   session, waits until every query has read everything and emitted what that closes;
5. counts, against the independent oracle, rows lost, duplicated, wrong or unexplained, and
   whether each malformed record became exactly one dead letter (counting.py).

It prints the counts and writes them as Markdown (report.py; ``--report``, docs/chaos.md by
default) and JSON beside it (__main__.py, the CLI).  Exit status 0 only when nothing was
lost, duplicated or wrong and the platform recovered from every fault.

The end-to-end test runs a short campaign (one fault of each kind) on its own platform
through `run_campaign`.
"""
