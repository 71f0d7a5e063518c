"""newsdesk flows: Prefect flows and tasks, discovery, fetching, cleaning, and the CLI."""

__version__ = "0.1.0"
