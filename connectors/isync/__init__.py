from connectors.isync.connector import *  # noqa: F403
