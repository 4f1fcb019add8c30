"""The operations console: server-rendered pages under ``/console`` of the
hub's HTTP app (``s2s.console.app.create_console``, mounted by ``s2s.api``)."""
