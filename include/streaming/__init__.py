"""The streaming application seen from outside Spark: its checkpoint (``checkpoints``), the
lease of the driver that holds it (``lease``), the listener's progress records
(``progress``), the idle rule's closer (``idle_close``), the pipeline's status for people
(``status``), and the supervisor that judges each output's health (``health``) and acts on
it (``supervisor``)."""
