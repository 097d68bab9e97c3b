"""Notifications: webhook and Apprise targets told about jobs' ends and subscriptions'
checks, through an outbox in PostgreSQL.

* ``targets`` (pure): the ``notify`` targets of the configuration, which of them hear of
  an event, the webhook body and its signature, the retry schedule.
* ``outbox``: the ``notifications`` table — :meth:`Outbox.record` inserts deliveries on a
  connection inside the caller's transaction; claims, marks and lists them.
* ``sender``: the task that sends due deliveries (webhooks through the network policy,
  Apprise in a thread) and marks them delivered, retried or given up.
* ``routes``: ``GET /notifications``, ``GET /notifications/targets``,
  ``POST /notifications/targets/{name}/test``.
"""
