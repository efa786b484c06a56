"""The node agent: the one process on each compute node that runs a work unit's shards.

It learns who it is from IMDSv2 (instance tags carry missionId/unitId/attempt), reads the
attempt's task token from ``tblTrans``, runs the queued shards in worker processes, heartbeats
the token, watches for Spot notices, commits results with conditional writes, reports through
the token and terminates its own instance. ``lighthpc-node`` (``node_agent.main:main``) starts it.
"""
