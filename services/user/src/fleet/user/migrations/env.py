from fleet.common.migrations import run_env
from fleet.user.adapters.tables import metadata

run_env(metadata)
