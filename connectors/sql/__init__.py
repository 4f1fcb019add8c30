"""A SQL-based ERP, the seeds' "connector_name" template (seed 002).

Many on-premise ERPs keep their data in SQL Server, MySQL or PostgreSQL and
offer no API; the hub reads them with a read-only user and SELECTs the
operator may rewrite per site, and raises orders into staging tables the ERP
imports from (``reference/erp-wire-formats.md`` section 4).

Three rules shape this package:

* The operator's SQL is trusted to describe data, never to change it: only a
  single SELECT (or WITH ... SELECT) gets through (``guard``), and every
  value the hub adds is a bound parameter.
* Pages are keyed, never offset (``shape``): a product's variants are
  several rows sharing the product code and a page never splits them.
* No database exception leaves the connector raw (``errors``). Each becomes
  a transient, settings or rejected error with a sentence that names the
  problem and never a password.
"""

from connectors.sql.connector import SqlConnector
from connectors.sql.guard import GuardedQuery, QueryError, guard_query
from connectors.sql.settings import SqlSettingsSchema
from connectors.sql.staging import order_tables

__all__ = [
    "GuardedQuery",
    "QueryError",
    "SqlConnector",
    "SqlSettingsSchema",
    "guard_query",
    "order_tables",
]
