"""Alerts: who is told when something goes wrong, through Airflow's notifiers.

* :mod:`include.alerts.notify`: the channels (a JSON webhook, e-mail through the SMTP
  provider), each off while ``[alerts]`` leaves its target empty, and :func:`send`.
* :mod:`include.alerts.messages`: the sentences, one per alert, with their links.
* :mod:`include.alerts.gate`: how often the same alert may repeat (a small JSON file).
* :mod:`include.alerts.callbacks`: what the DAGs and the supervisor attach or call.
* :mod:`include.alerts.dead_letters`: the dead-letter topic's asset watcher and its report.
"""
