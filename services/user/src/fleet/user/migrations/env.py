from fleet.user.adapters.tables import metadata
from fleet.common.migrations import run_env

run_env(metadata)
