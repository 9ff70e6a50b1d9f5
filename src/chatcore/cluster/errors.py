"""The errors cluster mode raises, importable without loading psycopg or redis (plugins catch
them on every node, in cluster mode or not)."""


class ClusterUnavailable(RuntimeError):
    """PostgreSQL or Redis could not be reached when the node started."""


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL could not be reached within the timeout (it is down or restarting)."""
