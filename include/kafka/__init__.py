"""Kafka as the platform uses it: the client helpers (``client``), each client's options for
``[kafka.security]`` (``security``), the least-privilege ACLs (``acls``) and the topics the
platform provisions (``topics``).  The broker as a local service is ``include.runtime.kafka``."""
