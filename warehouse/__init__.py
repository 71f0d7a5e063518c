"""The DuckDB warehouse: schema migrations, connections, loading, views."""

from warehouse.connection import SCHEMA_VERSION, WarehouseBusy, WarehouseError, open_warehouse

__all__ = ["SCHEMA_VERSION", "WarehouseBusy", "WarehouseError", "open_warehouse"]
